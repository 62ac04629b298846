"""A pynetdicom UPS SCP for tests: a small in-memory workitem store that records the wire.

pynetdicom is a peer this project did not write, so what it decodes is an independent
check of what our SCU sends. The SCP runs pynetdicom's threaded server on 127.0.0.1 and a
free port. Its handlers keep workitems in a dict and follow the PS3.4 Annex CC rules the
tests need (state changes with the Transaction UID, request cancel, subscriptions, C-FIND
matching on single values and on nested sequence items); every request is recorded with
its command fields, data set, presentation context and association parameters, and every
P-DATA-TF PDU received with its length and PDV count.

Knobs a test can turn: ``hang`` (operations whose handler never answers until ``stop``),
``force_status`` (answer an operation with a given status, and the Error Comment in
``force_comment`` when there is one), the abstract syntaxes and
transfer syntaxes it accepts (``final``/``trial``/``roles``/``transfer_syntaxes``).
"""

from __future__ import annotations

import fnmatch
import logging
import ssl
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pynetdicom import AE, evt
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.service_class_n import UnifiedProcedureStepServiceClass
from pynetdicom.sop_class import register_uid

from ups.services import uids

logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)

IMPLICIT = uids.IMPLICIT_VR_LITTLE_ENDIAN
EXPLICIT = uids.EXPLICIT_VR_LITTLE_ENDIAN
BIG_ENDIAN = uids.EXPLICIT_VR_BIG_ENDIAN
ALL_SYNTAXES = (EXPLICIT, IMPLICIT, BIG_ENDIAN, uids.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN)

# pynetdicom knows only the final UIDs; teach it the retired trial ones too.
for _kw, _uid in (
    ("UPSPushTrial", uids.UPS_PUSH_TRIAL),
    ("UPSPullTrial", uids.UPS_PULL_TRIAL),
    ("UPSWatchTrial", uids.UPS_WATCH_TRIAL),
    ("UPSEventTrial", uids.UPS_EVENT_TRIAL),
):
    register_uid(_uid, _kw, UnifiedProcedureStepServiceClass)

_COMMAND_FIELDS = (
    "MessageID",
    "AffectedSOPClassUID",
    "AffectedSOPInstanceUID",
    "RequestedSOPClassUID",
    "RequestedSOPInstanceUID",
    "ActionTypeID",
    "AttributeIdentifierList",
    "Priority",
)


@dataclass
class AssocRecord:
    """One A-ASSOCIATE-RQ as pynetdicom decoded it."""

    calling_ae: str
    called_ae: str
    max_pdu: int | None
    async_ops: tuple[int, int]
    contexts: list[tuple[str, list[str]]]
    user_identity: tuple[int, bytes, bytes, bool] | None
    pdata: list[tuple[int, int]] = field(default_factory=list)
    """Each P-DATA-TF received: (PDU length in bytes, number of PDVs)."""
    peer_host: str = ""
    """The requestor's IP address as the SCP's socket saw it."""


@dataclass
class Received:
    """One DIMSE request the SCP received."""

    dimse: str
    command: dict[str, Any]
    dataset: Dataset | None
    abstract_syntax: str
    transfer_syntax: str
    assoc: AssocRecord


@dataclass
class Workitem:
    ds: Dataset
    transaction_uid: str | None = None
    cancel_requested: Dataset | None = None


class PynetdicomUPSSCP:
    """The test SCP; ``with PynetdicomUPSSCP() as scp: ... scp.port``."""

    def __init__(
        self,
        *,
        ae_title: str = "UPSSCP",
        final: bool = True,
        trial: bool = True,
        roles: Sequence[str] = ("push", "pull", "watch", "event", "query"),
        transfer_syntaxes: Sequence[str] = ALL_SYNTAXES,
        max_pdu: int = 16382,
    ) -> None:
        self.ae = AE(ae_title)
        self.ae.maximum_pdu_size = max_pdu
        self.ae.network_timeout = 5
        self.ae.acse_timeout = 5
        self.ae.dimse_timeout = 5
        families = [f for f, on in ((uids.FINAL, final), (uids.TRIAL, trial)) if on]
        for family in families:
            for role in roles:
                uid = getattr(family, role)
                if uid is not None:
                    self.ae.add_supported_context(uid, list(transfer_syntaxes))
        self.ae.add_supported_context(uids.VERIFICATION, list(transfer_syntaxes))
        self.lock = threading.Lock()
        self.released = threading.Event()
        self.items: dict[str, Workitem] = {}
        self.subscriptions: dict[tuple[str, str], Dataset] = {}
        self.suspended: list[str] = []
        self.received: list[Received] = []
        self.associations: list[AssocRecord] = []
        self.hang: set[str] = set()
        self.force_status: dict[str, int] = {}
        self.force_comment: dict[str, str] = {}
        self._by_assoc: dict[int, AssocRecord] = {}
        self._server: Any = None

    # ------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def address(self) -> str:
        return f"{self.ae.ae_title}@127.0.0.1:{self.port}"

    def start(self, ssl_context: ssl.SSLContext | None = None) -> PynetdicomUPSSCP:
        handlers: list[Any] = [
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_PDU_RECV, self._on_pdu),
            (evt.EVT_USER_ID, self._on_user_id),
            (evt.EVT_C_ECHO, lambda event: 0x0000),
            (evt.EVT_N_CREATE, self._traced("N-CREATE", self._n_create)),
            (evt.EVT_N_SET, self._traced("N-SET", self._n_set)),
            (evt.EVT_N_GET, self._traced("N-GET", self._n_get)),
            (evt.EVT_N_ACTION, self._traced("N-ACTION", self._n_action)),
            (evt.EVT_C_FIND, self._c_find),
        ]
        self._server = self.ae.start_server(
            ("127.0.0.1", 0), block=False, ssl_context=ssl_context, evt_handlers=handlers
        )
        return self

    def stop(self) -> None:
        self.released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def reset(self) -> None:
        """Forget workitems, records and knobs (between tests sharing one SCP)."""
        with self.lock:
            self.items.clear()
            self.subscriptions.clear()
            self.suspended.clear()
            self.received.clear()
            self.associations.clear()
            self.hang.clear()
            self.force_status.clear()
            self.force_comment.clear()

    def __enter__(self) -> PynetdicomUPSSCP:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------ queries for tests

    def requests(self, dimse: str | None = None) -> list[Received]:
        with self.lock:
            return [r for r in self.received if dimse is None or r.dimse == dimse]

    def last(self, dimse: str | None = None) -> Received:
        found = self.requests(dimse)
        assert found, f"the SCP received no {dimse or 'request'}"
        return found[-1]

    def add_item(self, iuid: str, state: str = "SCHEDULED", **attrs: Any) -> Dataset:
        ds = Dataset()
        ds.SOPClassUID = uids.UPS_PUSH
        ds.SOPInstanceUID = iuid
        ds.ProcedureStepState = state
        ds.ScheduledProcedureStepPriority = "MEDIUM"
        ds.ProcedureStepLabel = "label"
        for keyword, value in attrs.items():
            setattr(ds, keyword, value)
        with self.lock:
            self.items[iuid] = Workitem(ds)
        return ds

    # ------------------------------------------------------------ recording

    def _on_requested(self, event: Any) -> None:
        rq = event.assoc.requestor
        identity = rq.user_identity
        record = AssocRecord(
            calling_ae=str(rq.primitive.calling_ae_title).strip(),
            called_ae=str(rq.primitive.called_ae_title).strip(),
            max_pdu=rq.maximum_length,
            async_ops=tuple(rq.asynchronous_operations),
            contexts=[
                (str(cx.abstract_syntax), [str(ts) for ts in cx.transfer_syntax])
                for cx in rq.requested_contexts
            ],
            user_identity=None
            if identity is None
            else (
                int(identity.user_identity_type),
                bytes(identity.primary_field or b""),
                bytes(identity.secondary_field or b""),
                bool(identity.positive_response_requested),
            ),
            peer_host=str(rq.address),
        )
        with self.lock:
            self.associations.append(record)
            self._by_assoc[id(event.assoc)] = record

    def _on_pdu(self, event: Any) -> None:
        pdu = event.pdu
        if isinstance(pdu, P_DATA_TF):
            with self.lock:
                record = self._by_assoc.get(id(event.assoc))
                if record is not None:
                    record.pdata.append((len(pdu), len(pdu.presentation_data_value_items)))

    def _on_user_id(self, event: Any) -> tuple[bool, bytes | None]:
        if event.primary_field == b"deny":
            return False, None
        return True, b"welcome"

    def _record(self, event: Any, dimse: str, dataset: Dataset | None) -> None:
        req = event.request
        command = {
            name: getattr(req, name)
            for name in _COMMAND_FIELDS
            if getattr(req, name, None) is not None
        }
        with self.lock:
            assoc = self._by_assoc[id(event.assoc)]
            self.received.append(
                Received(
                    dimse,
                    command,
                    dataset,
                    str(event.context.abstract_syntax),
                    str(event.context.transfer_syntax),
                    assoc,
                )
            )

    def _traced(self, dimse: str, handler: Any) -> Any:
        def run(event: Any) -> tuple[int, Dataset | None]:
            attribute = {
                "N-CREATE": "attribute_list",
                "N-SET": "modification_list",
                "N-ACTION": "action_information",
            }.get(dimse)
            ds: Dataset | None = getattr(event, attribute) if attribute else None
            self._record(event, dimse, ds)
            if dimse in self.hang:
                self.released.wait(30)
                return 0x0110, None
            if dimse in self.force_status:
                comment = self.force_comment.get(dimse)
                if comment is None:
                    return self.force_status[dimse], None
                status = Dataset()
                status.Status = self.force_status[dimse]
                status.ErrorComment = comment
                return status, None  # type: ignore[return-value]
            with self.lock:
                result: tuple[int, Dataset | None] = handler(event, ds)
                return result

        return run

    # ------------------------------------------------------------ the UPS rules

    def _n_create(self, event: Any, ds: Dataset) -> tuple[int, Dataset | None]:
        iuid = str(event.request.AffectedSOPInstanceUID)
        if iuid in self.items:
            return 0x0111, None
        if ds.get("ProcedureStepState") != "SCHEDULED":
            return 0xC309, None
        if "SOPClassUID" in ds or "SOPInstanceUID" in ds:
            return 0x0105, None  # as dcm4chee-arc does
        stored = Dataset()
        stored.update(ds)
        stored.SOPClassUID = uids.UPS_PUSH
        stored.SOPInstanceUID = iuid
        if "TransactionUID" in stored:
            del stored.TransactionUID
        self.items[iuid] = Workitem(stored)
        return 0x0000, None

    def _n_set(self, event: Any, ds: Dataset) -> tuple[int, Dataset | None]:
        item = self.items.get(str(event.request.RequestedSOPInstanceUID))
        if item is None:
            return 0xC307, None
        state = item.ds.ProcedureStepState
        if state in ("COMPLETED", "CANCELED"):
            return 0xC300, None
        tuid = ds.get("TransactionUID")
        if state == "IN PROGRESS" and tuid != item.transaction_uid:
            return 0xC301, None
        if state == "SCHEDULED" and tuid:
            return 0xC310, None
        for elem in ds:
            if elem.keyword != "TransactionUID":
                item.ds[elem.tag] = elem
        return 0x0000, None

    def _n_get(self, event: Any, ds: Dataset | None) -> tuple[int, Dataset | None]:
        item = self.items.get(str(event.request.RequestedSOPInstanceUID))
        if item is None:
            return 0xC307, None
        wanted = event.request.AttributeIdentifierList
        out = Dataset()
        if not wanted:
            out.update(item.ds)
        else:
            for tag in wanted if isinstance(wanted, list) else [wanted]:
                elem = item.ds.get(tag)
                if isinstance(elem, DataElement):
                    out.add(elem)
        return 0x0000, out

    def _n_action(self, event: Any, ds: Dataset) -> tuple[int, Dataset | None]:
        action = int(event.action_type)
        iuid = str(event.request.RequestedSOPInstanceUID)
        if action in (3, 4, 5):
            return self._subscription(action, iuid, ds), None
        item = self.items.get(iuid)
        if item is None:
            return 0xC307, None
        if action == 1:
            return self._change_state(item, ds), None
        if action == 2:
            return self._request_cancel(item, ds), None
        return 0x0123, None

    def _change_state(self, item: Workitem, ds: Dataset) -> int:
        state, wanted, tuid = item.ds.ProcedureStepState, ds.get("ProcedureStepState"), None
        tuid = ds.get("TransactionUID")
        if not tuid or wanted not in ("IN PROGRESS", "COMPLETED", "CANCELED", "SCHEDULED"):
            return 0x0115
        if wanted == "SCHEDULED":
            return 0xC303
        if state == wanted == "COMPLETED":
            return 0xB306
        if state == wanted == "CANCELED":
            return 0xB304
        if state in ("COMPLETED", "CANCELED"):
            return 0xC300
        if wanted == "IN PROGRESS":
            if state == "IN PROGRESS":
                return 0xC302
            item.transaction_uid = str(tuid)
        elif state == "SCHEDULED":
            return 0xC310
        elif tuid != item.transaction_uid:
            return 0xC301
        item.ds.ProcedureStepState = wanted
        return 0x0000

    def _request_cancel(self, item: Workitem, ds: Dataset) -> int:
        state = item.ds.ProcedureStepState
        if state == "COMPLETED":
            return 0xC311
        if state == "CANCELED":
            return 0xB304
        item.cancel_requested = ds
        if state == "SCHEDULED":
            item.ds.ProcedureStepState = "CANCELED"
        return 0x0000

    def _subscription(self, action: int, iuid: str, ds: Dataset) -> int:
        aet = ds.get("ReceivingAE")
        if not aet:
            return 0x0115
        global_ = iuid in uids.GLOBAL_SUBSCRIPTION_INSTANCES
        if not global_ and iuid not in self.items:
            return 0xC307
        if action == 3:
            if ds.get("DeletionLock") not in ("TRUE", "FALSE"):
                return 0x0115
            self.subscriptions[(str(aet), iuid)] = ds
        elif action == 4:
            if global_:
                for key in [k for k in self.subscriptions if k[0] == aet]:
                    del self.subscriptions[key]
            else:
                self.subscriptions.pop((str(aet), iuid), None)
        else:
            if iuid != uids.UPS_GLOBAL_SUBSCRIPTION_INSTANCE:
                return 0xC314
            self.suspended.append(str(aet))
            for key in [k for k in self.subscriptions if k == (aet, iuid)]:
                del self.subscriptions[key]
        return 0x0000

    def _c_find(self, event: Any) -> Iterator[tuple[int, Dataset | None]]:
        query = event.identifier
        self._record(event, "C-FIND", query)
        if "C-FIND" in self.hang:
            self.released.wait(30)
            yield 0x0110, None
            return
        if "C-FIND" in self.force_status:
            yield self.force_status["C-FIND"], None
            return
        with self.lock:
            matches = [w.ds for w in self.items.values() if _matches(w.ds, query)]
        for ds in matches:
            yield 0xFF00, _returned(ds, query)


def _matches(ds: Dataset, query: Dataset) -> bool:
    """Single value (with ``*``), universal (empty) and sequence matching (PS3.4 C.2.2.2)."""
    for elem in query:
        if elem.keyword == "SpecificCharacterSet" or elem.value in (None, "", b""):
            continue
        if elem.VR == "SQ":
            if not elem.value or not any(e.value not in (None, "", b"") for e in elem.value[0]):
                continue  # universal: an empty sequence or an item of empty keys
            stored = ds.get(elem.tag)
            items = stored.value if stored is not None and stored.VR == "SQ" else []
            if not any(_matches(item, elem.value[0]) for item in items):
                return False
            continue
        stored = ds.get(elem.tag)
        if stored is None or stored.value in (None, ""):
            return False
        wanted, have = str(elem.value), str(stored.value)
        if "*" in wanted:
            if not fnmatch.fnmatchcase(have, wanted):
                return False
        elif wanted != have:
            return False
    return True


def _returned(ds: Dataset, query: Dataset) -> Dataset:
    out = Dataset()
    for elem in query:
        stored = ds.get(elem.tag)
        if stored is None:
            out[elem.tag] = elem
        elif elem.VR == "SQ" and elem.value and len(elem.value[0]):
            items = [_returned(item, elem.value[0]) for item in stored.value]
            out.add_new(elem.tag, "SQ", DicomSequence(items))
        else:
            out[elem.tag] = stored
    return out
