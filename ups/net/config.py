"""Per-association settings, frozen: every timeout, limit and socket option in one place.

Names follow the seed tool's options (``-acceptTO``, ``-rspTO``, ``-reaper`` ...); the
CLI converts their milliseconds and kilobytes into the seconds and bytes used here.
"""

from __future__ import annotations

from dataclasses import dataclass

from ups.dimse.provider import ProviderSettings
from ups.net.tls import TLSOptions

DEFAULT_PDU_LENGTH = 16 * 1024
"""-rcvpdulen/-sndpdulen default: 16 KB of 1024 bytes."""


@dataclass(frozen=True, slots=True)
class AssociationConfig:
    """How one association behaves; shared by the requestor and the acceptor.

    Times are in seconds; ``None`` means "no limit" where the seed allows that.
    """

    connect_timeout: float | None = None
    """-connectTO: TCP (and TLS) connect."""
    accept_timeout: float = 5.0
    """-acceptTO: from sending A-ASSOCIATE-RQ to receiving the AC/RJ."""
    request_timeout: float = 5.0
    """-requestTO: acceptor's ARTIM, from connection to a complete A-ASSOCIATE-RQ."""
    release_timeout: float = 5.0
    """-releaseTO: from sending A-RELEASE-RQ to receiving A-RELEASE-RP."""
    response_timeout: float = 10.0
    """-rspTO: longest wait for a DIMSE response (for C-FIND, between responses)."""
    reaper_period: float = 10.0
    """-reaper: how often outstanding responses are checked against -rspTO."""
    idle_timeout: float | None = None
    """-idleTO: abort an association with no traffic for this long."""
    send_timeout: float | None = 10.0
    """-sendTO: abort an association whose writes stay blocked (the transport above
    ``write_buffer_limit``, the peer not reading) this long; None: never."""
    pdu_timeout: float = 30.0
    """A PDU that has started arriving must be complete within this (slow-peer guard)."""
    so_close_delay: float = 0.05
    """-soclosedelay: wait before closing the socket after sending A-ABORT."""
    tcp_nodelay: bool = True
    """TCP_NODELAY; -tcpdelay turns it off."""
    tcp_quickack: bool = True
    """Linux TCP_QUICKACK after a read that leaves a message incomplete, so that a peer
    with Nagle on is not held up by our delayed ACK (about 40 ms a message)."""
    so_sndbuf: int | None = None
    so_rcvbuf: int | None = None
    max_pdata_receive: int = DEFAULT_PDU_LENGTH
    """-rcvpdulen: the Maximum Length Received we announce (0 = unlimited)."""
    max_pdata_send: int = DEFAULT_PDU_LENGTH
    """-sndpdulen: our own cap on P-DATA-TF we send, below the peer's limit."""
    max_dataset_length: int = 64 * 1024 * 1024
    """Largest data set we reassemble from a peer; a peer that never ends one is cut off."""
    pack_pdv: bool = True
    """False is -pdv1: one PDV per P-DATA-TF."""
    max_ops_invoked: int = 1
    """Operations we may have outstanding at once (0 = unlimited; 1 = no window item)."""
    max_ops_performed: int = 1
    """Operations from the peer we perform at once (0 = unlimited)."""
    write_buffer_limit: int = 256 * 1024
    """Above this many unsent bytes we stop reading and make senders wait."""
    tls: TLSOptions | None = None
    allow_cleartext_passcodes: bool = False
    """Acceptor: let a transport-bound identity verifier (``--users``) accept a passcode
    over plain TCP (``--allow-cleartext-passcodes``). Off: refused 1/1/1, see the README."""

    def handshake_timeout(self, acceptor: bool) -> float:
        """TLS handshake limit: never longer than the association-request timer."""
        phase = self.request_timeout if acceptor else self.accept_timeout
        if self.tls is None:
            return phase
        return min(self.tls.handshake_timeout, phase)

    def provider_settings(self) -> ProviderSettings:
        """The timeouts and limits the sans-I/O provider core needs (``dimse.provider``)."""
        return ProviderSettings(
            accept_timeout=self.accept_timeout,
            request_timeout=self.request_timeout,
            release_timeout=self.release_timeout,
            response_timeout=self.response_timeout,
            reaper_period=self.reaper_period,
            idle_timeout=self.idle_timeout,
            send_timeout=self.send_timeout,
            pdu_timeout=self.pdu_timeout,
            so_close_delay=self.so_close_delay,
            max_pdata_receive=self.max_pdata_receive,
            max_pdata_send=self.max_pdata_send,
            max_dataset_length=self.max_dataset_length,
            pack_pdv=self.pack_pdv,
        )
