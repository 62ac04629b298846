"""The UPS SCU: every operation of PS3.4 Annex CC as one async method.

Each method builds the DIMSE request exactly as Annex CC describes (CC.2.5 N-CREATE,
CC.2.6 N-SET, CC.2.7 N-GET, CC.2.1-CC.2.4 N-ACTION types 1-5, CC.2.8 C-FIND), sends
it on the presentation context deployed SCPs expect for that operation, and returns
a ``UPSResult``. A failure status raises ``UPSFailure``, which carries the status and
its meaning; a warning comes back in the result for the caller to show.

SOP classes: by default both the final UIDs (1.2.840.10008.5.1.4.34.6.x) and the
retired trial ones the seed used (…34.4.x) are proposed, and whichever the SCP
accepts is used, so one command works against old and new SCPs. DIMSE-N requests
name UPS Push of the negotiated family as their Affected/Requested SOP Class, as
dcm4che does; C-FIND names the SOP class of its context.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import AsyncIterator, Generator, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import generate_uid

from ups.dimse.datasets import decode_dataset, encode_dataset
from ups.dimse.messages import (
    PRIORITY_MEDIUM,
    CEchoRQ,
    CFindRQ,
    NActionRQ,
    NCreateRQ,
    NGetRQ,
    NSetRQ,
    Response,
)
from ups.dimse.status import StatusCategory, describe, status_info
from ups.net.association import Association
from ups.net.config import AssociationConfig
from ups.net.errors import NoPresentationContext
from ups.net.requestor import build_request
from ups.net.requestor import connect as open_association
from ups.pdu.items import UserIdentityRQ
from ups.pdu.negotiation import AcceptedContext
from ups.services.address import AEAddress, check_ae_title, parse_remote
from ups.services.errors import UPSFailure
from ups.services.uids import (
    DEFAULT_TRANSFER_SYNTAXES,
    FINAL,
    TRIAL,
    UPS_FILTERED_GLOBAL_SUBSCRIPTION_INSTANCE,
    UPS_GLOBAL_SUBSCRIPTION_INSTANCE,
    VERIFICATION,
    ActionType,
    Role,
    UPSFamily,
)

__all__ = [
    "Connecting",
    "Matches",
    "SCUOptions",
    "UPSClient",
    "UPSFailure",
    "UPSResult",
    "connect",
    "proposed_contexts",
    "with_create_defaults",
]


@dataclass(frozen=True, slots=True)
class UPSResult:
    """One operation's outcome: status (success or warning), the UPS and its data set."""

    operation: str
    status: int
    iuid: str | None = None
    dataset: Dataset | None = None
    error_comment: str | None = None

    @property
    def is_warning(self) -> bool:
        return status_info(self.status).category is StatusCategory.WARNING

    @property
    def meaning(self) -> str:
        return describe(self.status)


Family = str  # "auto", "final" or "trial"

# Which roles may carry an operation, in order of preference (see ups-peers.md).
_ROLES: dict[str, tuple[Role, ...]] = {
    "create": (Role.PUSH,),
    "set": (Role.PULL, Role.PUSH),
    "get": (Role.PUSH, Role.PULL, Role.WATCH),
    "find": (Role.PULL, Role.WATCH, Role.QUERY),
    "chstate": (Role.PULL,),
    "reqcancel": (Role.PUSH, Role.WATCH),
    "subscribe": (Role.WATCH,),
    "unsubscribe": (Role.WATCH,),
    "suspend": (Role.WATCH,),
}

_CREATE_DEFAULTS_TYPE1 = (
    ("ProcedureStepState", "SCHEDULED"),
    ("InputReadinessState", "READY"),
    ("ScheduledProcedureStepPriority", "MEDIUM"),
    ("ProcedureStepLabel", "DEFAULT"),
)
# Type 2 creation attributes of PS3.4 Table CC.2.5-3 sent empty when absent.
_CREATE_EMPTY_TYPE2 = (
    "TransactionUID",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "OtherPatientIDsSequence",
    "AdmissionID",
    "IssuerOfAdmissionIDSequence",
    "AdmittingDiagnosesDescription",
    "AdmittingDiagnosesCodeSequence",
    "ReferencedRequestSequence",
    "ScheduledWorkitemCodeSequence",
    "CommentsOnTheScheduledProcedureStep",
    "InputInformationSequence",
    "ScheduledStationNameCodeSequence",
    "ScheduledStationClassCodeSequence",
    "ScheduledStationGeographicLocationCodeSequence",
    "ScheduledProcessingParametersSequence",
    "WorklistLabel",
    "ProcedureStepProgressInformationSequence",
    "UnifiedProcedureStepPerformedProcedureSequence",
    "ExpectedCompletionDateTime",
    "ScheduledHumanPerformersSequence",
)


def with_create_defaults(ds: Dataset | None, now: _dt.datetime | None = None) -> Dataset:
    """``ds`` completed so that an N-CREATE passes PS3.4 Table CC.2.5-3 as sent bare.

    Type 1 attributes get the usual defaults (SCHEDULED, READY, MEDIUM, a label, start
    date/time now); Type 2 ones are added empty. SOP Class/Instance UID are removed:
    N-CREATE names the instance in its command (Affected SOP Instance UID).
    """
    out = Dataset() if ds is None else _copy(ds)
    for keyword in ("SOPClassUID", "SOPInstanceUID"):
        if keyword in out:
            delattr(out, keyword)
    for keyword, value in _CREATE_DEFAULTS_TYPE1:
        if not out.get(keyword):
            setattr(out, keyword, value)
    if not out.get("ScheduledProcedureStepStartDateTime"):
        stamp = (now or _dt.datetime.now()).strftime("%Y%m%d%H%M%S")
        out.ScheduledProcedureStepStartDateTime = stamp
    for keyword in _CREATE_EMPTY_TYPE2:
        if keyword not in out:
            tag = pydicom.datadict.tag_for_keyword(keyword)
            if tag is None:  # pragma: no cover - dictionary sanity
                continue
            vr = pydicom.datadict.dictionary_VR(tag)
            out.add_new(tag, vr, DicomSequence() if vr == "SQ" else None)
    return out


def _copy(ds: Dataset) -> Dataset:
    copy = Dataset()
    copy.update(ds)
    return copy


@dataclass(frozen=True, slots=True)
class SCUOptions:
    """What the SCU proposes: families, forced role, transfer syntaxes, identity."""

    calling_ae_title: str = "DCMUPSSCU"
    family: Family = "auto"
    force_role: Role | None = None
    transfer_syntaxes: tuple[str, ...] = DEFAULT_TRANSFER_SYNTAXES
    config: AssociationConfig = field(default_factory=AssociationConfig)
    user_identity: UserIdentityRQ | None = None
    find_priority: int = PRIORITY_MEDIUM
    local_host: str | None = None
    """The local address the association is opened from (the seed's ``-L aet@host``);
    None lets the system choose."""


def _families(family: Family) -> tuple[UPSFamily, ...]:
    if family == "final":
        return (FINAL,)
    if family == "trial":
        return (TRIAL,)
    return (FINAL, TRIAL)


def proposed_contexts(options: SCUOptions) -> list[tuple[str, Sequence[str]]]:
    """Presentation contexts for every role of every family asked for, and Verification."""
    roles = (
        (options.force_role,)
        if options.force_role
        else (Role.PUSH, Role.PULL, Role.WATCH, Role.QUERY)
    )
    contexts: list[tuple[str, Sequence[str]]] = []
    for family in _families(options.family):
        for role in roles:
            uid = getattr(family, role.value)
            if uid is not None:
                contexts.append((uid, options.transfer_syntaxes))
    contexts.append((VERIFICATION, options.transfer_syntaxes))
    return contexts


class Matches:
    """What :meth:`UPSClient.find` returns: an async iterator over the matches alone.

    ``final`` is the final response (Success) once the iteration is over, None before.
    """

    __slots__ = ("_responses", "final")

    def __init__(self, responses: AsyncIterator[UPSResult]) -> None:
        self._responses = responses
        self.final: UPSResult | None = None

    def __aiter__(self) -> Matches:
        return self

    async def __anext__(self) -> UPSResult:
        result = await anext(self._responses)
        if status_info(result.status).is_pending:
            return result
        self.final = result
        await self.aclose()
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Stop early (as ``break`` does once the iterator is collected)."""
        aclose = getattr(self._responses, "aclose", None)
        if aclose is not None:
            await aclose()


class UPSClient:
    """An open association to a UPS SCP; made by ``async with connect(...) as scu``."""

    def __init__(self, association: Association, options: SCUOptions) -> None:
        self.association = association
        self.options = options

    # ------------------------------------------------------------ plumbing

    def _context(self, operation: str) -> tuple[AcceptedContext, UPSFamily]:
        roles = (self.options.force_role,) if self.options.force_role else _ROLES[operation]
        negotiated = self.association.negotiated
        assert negotiated is not None
        for family in _families(self.options.family):
            for role in roles:
                uid = getattr(family, role.value)
                if uid is None:
                    continue
                found = negotiated.context_for(uid)
                if found is not None:
                    return found, family
        wanted = ", ".join(r.value.capitalize() for r in roles)
        raise NoPresentationContext(
            f"{operation}: {negotiated.remote_ae_title} accepted no UPS {wanted} "
            "presentation context"
        )

    def _encode(self, ds: Dataset, context: AcceptedContext) -> bytes:
        return encode_dataset(ds, context.transfer_syntax)

    def _decode(self, raw: bytes | None, context: AcceptedContext) -> Dataset | None:
        return None if raw is None else decode_dataset(raw, context.transfer_syntax)

    def _result(
        self, operation: str, response: Response, context: AcceptedContext, iuid: str | None
    ) -> UPSResult:
        status = response.status
        comment = getattr(response, "error_comment", None)
        if status_info(status).category in (StatusCategory.FAILURE, StatusCategory.CANCEL):
            raise UPSFailure(operation, status, comment)
        returned = getattr(response, "affected_sop_instance_uid", None)
        return UPSResult(
            operation, status, returned or iuid, self._decode(response.dataset, context), comment
        )

    async def _action(
        self,
        operation: str,
        action: ActionType,
        iuid: str,
        dataset: Dataset,
        extra: Dataset | None = None,
    ) -> UPSResult:
        """N-ACTION; ``extra`` attributes (the CLI's -q) go in too, below the named ones."""
        if extra is not None and len(extra):
            merged = _copy(extra)
            merged.update(dataset)
            dataset = merged
        context, family = self._context(operation)
        association = self.association
        request = NActionRQ(
            message_id=association.new_message_id(),
            requested_sop_class_uid=family.push,
            requested_sop_instance_uid=iuid,
            action_type_id=int(action),
            dataset=self._encode(dataset, context),
        )
        response = await association.request(request, context.context_id)
        return self._result(operation, response, context, iuid)

    # ------------------------------------------------------------ operations

    async def echo(self) -> UPSResult:
        context = self.association.context_for(VERIFICATION)
        response = await self.association.request(
            CEchoRQ(self.association.new_message_id()), context.context_id
        )
        return self._result("echo", response, context, None)

    async def create(self, dataset: Dataset | None = None, iuid: str | None = None) -> UPSResult:
        """N-CREATE on UPS Push; the instance UID is ``iuid`` or a new one (returned)."""
        context, family = self._context("create")
        iuid = iuid or str(generate_uid())
        request = NCreateRQ(
            message_id=self.association.new_message_id(),
            affected_sop_class_uid=family.push,
            affected_sop_instance_uid=iuid,
            dataset=self._encode(with_create_defaults(dataset), context),
        )
        response = await self.association.request(request, context.context_id)
        return self._result("create", response, context, iuid)

    async def set(
        self, iuid: str, dataset: Dataset, transaction_uid: str | None = None
    ) -> UPSResult:
        """N-SET on UPS Pull; ``transaction_uid`` goes into the data set (CC.2.6)."""
        context, family = self._context("set")
        ds = _copy(dataset)
        if transaction_uid:
            ds.TransactionUID = transaction_uid
        request = NSetRQ(
            message_id=self.association.new_message_id(),
            requested_sop_class_uid=family.push,
            requested_sop_instance_uid=iuid,
            dataset=self._encode(ds, context),
        )
        response = await self.association.request(request, context.context_id)
        return self._result("set", response, context, iuid)

    async def get(self, iuid: str, attributes: Sequence[int] = ()) -> UPSResult:
        """N-GET on UPS Push; no ``attributes`` asks for all of them."""
        context, family = self._context("get")
        request = NGetRQ(
            message_id=self.association.new_message_id(),
            requested_sop_class_uid=family.push,
            requested_sop_instance_uid=iuid,
            attribute_identifier_list=tuple(attributes) or None,
        )
        response = await self.association.request(request, context.context_id)
        return self._result("get", response, context, iuid)

    def find(self, query: Dataset, priority: int | None = None) -> Matches:
        """C-FIND: ``async for match in scu.find(query)`` yields each match (status
        Pending, with its data set); the final response is not a match, it is
        ``.final`` once the loop ended. A failure or cancel status raises ``UPSFailure``."""
        return Matches(self._find(query, priority))

    async def _find(self, query: Dataset, priority: int | None) -> AsyncIterator[UPSResult]:
        context, _ = self._context("find")
        association = self.association
        request = CFindRQ(
            message_id=association.new_message_id(),
            affected_sop_class_uid=context.abstract_syntax,
            priority=self.options.find_priority if priority is None else priority,
            dataset=self._encode(query, context),
        )
        async for response in association.find(request, context.context_id):
            iuid = None
            ds = self._decode(response.dataset, context)
            if ds is not None:
                iuid = ds.get("SOPInstanceUID")
            yield self._result("find", response, context, iuid)

    async def change_state(
        self, iuid: str, state: str, transaction_uid: str, *, attributes: Dataset | None = None
    ) -> UPSResult:
        """N-ACTION 1 (Change UPS State) on UPS Pull with the Transaction UID (CC.2.1)."""
        ds = Dataset()
        ds.ProcedureStepState = state
        ds.TransactionUID = transaction_uid
        return await self._action("chstate", ActionType.CHANGE_STATE, iuid, ds, attributes)

    async def request_cancel(
        self,
        iuid: str,
        *,
        requesting_ae: str | None = None,
        reason: str | None = None,
        reason_code: tuple[str, str, str] | None = None,
        contact_display_name: str | None = None,
        contact_uri: str | None = None,
        attributes: Dataset | None = None,
    ) -> UPSResult:
        """N-ACTION 2 (Request UPS Cancel) on UPS Push (CC.2.2)."""
        ds = Dataset()
        if requesting_ae:
            ds.RequestingAE = requesting_ae
        if reason:
            ds.ReasonForCancellation = reason
        if reason_code:
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = reason_code
            ds.ProcedureStepDiscontinuationReasonCodeSequence = DicomSequence([item])
        if contact_uri:
            ds.ContactURI = contact_uri
        if contact_display_name:
            ds.ContactDisplayName = contact_display_name
        return await self._action("reqcancel", ActionType.REQUEST_CANCEL, iuid, ds, attributes)

    async def subscribe(
        self,
        receiving_ae: str,
        iuid: str | None = None,
        *,
        deletion_lock: bool = False,
        matching_keys: Dataset | None = None,
    ) -> UPSResult:
        """N-ACTION 3 on UPS Watch: one UPS, global, or filtered global (CC.2.3)."""
        ds = _copy(matching_keys) if matching_keys is not None else Dataset()
        ds.ReceivingAE = receiving_ae
        ds.DeletionLock = "TRUE" if deletion_lock else "FALSE"
        if iuid is None:
            iuid = (
                UPS_FILTERED_GLOBAL_SUBSCRIPTION_INSTANCE
                if matching_keys is not None and len(matching_keys)
                else UPS_GLOBAL_SUBSCRIPTION_INSTANCE
            )
        return await self._action("subscribe", ActionType.SUBSCRIBE, iuid, ds)

    async def unsubscribe(
        self, receiving_ae: str, iuid: str | None = None, *, attributes: Dataset | None = None
    ) -> UPSResult:
        """N-ACTION 4 on UPS Watch: from one UPS, or globally (CC.2.3)."""
        ds = Dataset()
        ds.ReceivingAE = receiving_ae
        instance = iuid or UPS_GLOBAL_SUBSCRIPTION_INSTANCE
        return await self._action("unsubscribe", ActionType.UNSUBSCRIBE, instance, ds, attributes)

    async def suspend(self, receiving_ae: str, *, attributes: Dataset | None = None) -> UPSResult:
        """N-ACTION 5 (Suspend Global Subscription) on UPS Watch (CC.2.3)."""
        ds = Dataset()
        ds.ReceivingAE = receiving_ae
        return await self._action(
            "suspend", ActionType.SUSPEND_GLOBAL, UPS_GLOBAL_SUBSCRIPTION_INSTANCE, ds, attributes
        )

    # ------------------------------------------------------------ lifecycle

    async def release(self) -> None:
        await self.association.release()

    async def __aenter__(self) -> UPSClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # A failure status leaves the association healthy: release it politely.
        if exc_type is None or isinstance(exc, UPSFailure):
            await self.association.release()
            return
        # An association that already failed (timeout, peer abort) is closing on its own,
        # after -soclosedelay: aborting it again would cut that delay short.
        if self.association.is_established:
            self.association.abort()
        await self.association.wait_closed()


class Connecting:
    """What :func:`connect` returns: the association is opened when it is entered or awaited.

    ``async with connect(...) as scu`` releases (or, after an error, aborts) on the way
    out; ``scu = await connect(...)`` hands the :class:`UPSClient` over, and the caller
    uses it as ``async with scu`` or calls ``release``.
    """

    __slots__ = ("_address", "_options", "_client")

    def __init__(self, address: AEAddress, options: SCUOptions) -> None:
        self._address = address
        self._options = options
        self._client: UPSClient | None = None

    async def _open(self) -> UPSClient:
        options = self._options
        called, host, port = self._address
        rq = build_request(
            called,
            options.calling_ae_title,
            proposed_contexts(options),
            options.config,
            user_identity=options.user_identity,
        )
        local = None if options.local_host is None else (options.local_host, 0)
        association = await open_association(host, port, rq, options.config, local_address=local)
        return UPSClient(association, options)

    def __await__(self) -> Generator[Any, None, UPSClient]:
        return self._open().__await__()

    async def __aenter__(self) -> UPSClient:
        self._client = await self._open()
        return self._client

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.__aexit__(exc_type, exc, tb)


def connect(
    remote: str, options: SCUOptions | None = None, *, calling_aet: str | None = None
) -> Connecting:
    """An association to the UPS SCP ``AET[@host[:port]]`` (localhost and 104 by default).

    ``async with ups.connect("UPSSCP@host:11112", calling_aet="ME") as scu: ...``.
    ``options`` says what is proposed (:class:`SCUOptions`); ``calling_aet``, when
    given, replaces its calling AE title. The remote is parsed here, so a bad one raises
    :class:`~ups.services.errors.AddressError` at once; network errors come on entry.
    """
    options = options or SCUOptions()
    if calling_aet is not None:
        options = replace(options, calling_ae_title=check_ae_title(calling_aet))
    return Connecting(parse_remote(remote), options)
