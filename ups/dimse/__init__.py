"""The DIMSE layer (PS3.7), sans-I/O: command sets, messages, PDV fragments, statuses.

Bytes in, messages out; messages in, bytes out. Nothing here touches a socket, a
clock or the event loop. Modules:

* ``codec``     group 0000 command sets, Implicit VR Little Endian (PS3.7 §6.3, Annex E)
* ``messages``  typed request/response dataclasses and their command sets (§9.3, §10.3)
* ``fragment``  P-DATA-TF packing and PDV reassembly (PS3.8 Annex E, PS3.7 §8)
* ``datasets``  lazily decoded data sets in the four uncompressed transfer syntaxes
* ``scanner``   one pass over a data set's bytes: structure, limits, DICOM JSON (PS3.18 F.2)
* ``status``    the status code table (PS3.7 Annex C, PS3.4 Annex CC)
* ``errors``    ``DimseError`` and friends, each carrying its PS3.7 status
* ``provider``  the DIMSE provider core: one association's Message IDs, both windows,
                C-FIND streams, C-CANCEL, the reaper and every deadline, over the pdu
                machine (``provider_base``, ``provider_lifecycle``, ``provider_window``,
                ``provider_deadlines``, ``provider_events``)
"""

from __future__ import annotations

from ups.dimse.codec import CommandValue, decode_command_set, encode_command_set
from ups.dimse.datasets import (
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
    EXPLICIT_VR_BIG_ENDIAN,
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    LazyDataset,
    decode_dataset,
    encode_dataset,
)
from ups.dimse.errors import (
    DatasetError,
    DimseError,
    EncodeError,
    FragmentError,
    LimitExceeded,
    MalformedCommand,
    UnrecognizedOperation,
)
from ups.dimse.fragment import Reassembler, RejectedMessage, encode_pdata
from ups.dimse.messages import (
    CCancelRQ,
    CEchoRQ,
    CEchoRSP,
    CFindRQ,
    CFindRSP,
    CStoreRQ,
    CStoreRSP,
    Message,
    NActionRQ,
    NActionRSP,
    NCreateRQ,
    NCreateRSP,
    NDeleteRQ,
    NDeleteRSP,
    NEventReportRQ,
    NEventReportRSP,
    NGetRQ,
    NGetRSP,
    NSetRQ,
    NSetRSP,
    Request,
    Response,
    decode_message,
    encode_command,
    is_request,
)
from ups.dimse.scanner import DEFAULT_SCAN_LIMITS, ScanLimits, check_dataset, dataset_json
from ups.dimse.status import Status, StatusCategory, StatusInfo, describe, status_info

__all__ = [
    "CCancelRQ",
    "CEchoRQ",
    "CEchoRSP",
    "CFindRQ",
    "CFindRSP",
    "CStoreRQ",
    "CStoreRSP",
    "CommandValue",
    "DEFAULT_SCAN_LIMITS",
    "DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN",
    "DatasetError",
    "DimseError",
    "EXPLICIT_VR_BIG_ENDIAN",
    "EXPLICIT_VR_LITTLE_ENDIAN",
    "EncodeError",
    "FragmentError",
    "IMPLICIT_VR_LITTLE_ENDIAN",
    "LazyDataset",
    "LimitExceeded",
    "MalformedCommand",
    "Message",
    "NActionRQ",
    "NActionRSP",
    "NCreateRQ",
    "NCreateRSP",
    "NDeleteRQ",
    "NDeleteRSP",
    "NEventReportRQ",
    "NEventReportRSP",
    "NGetRQ",
    "NGetRSP",
    "NSetRQ",
    "NSetRSP",
    "Reassembler",
    "RejectedMessage",
    "Request",
    "Response",
    "ScanLimits",
    "Status",
    "StatusCategory",
    "StatusInfo",
    "UnrecognizedOperation",
    "check_dataset",
    "dataset_json",
    "decode_command_set",
    "decode_dataset",
    "decode_message",
    "describe",
    "encode_command",
    "encode_command_set",
    "encode_dataset",
    "encode_pdata",
    "is_request",
    "status_info",
]
