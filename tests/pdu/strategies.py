"""Hypothesis strategies for every PDU, item and sub-item."""

from __future__ import annotations

from hypothesis import strategies as st

from ups.pdu.enums import (
    AbortReason,
    AbortSource,
    ContextResult,
    RejectResult,
    RejectSource,
    UserIdentityType,
)
from ups.pdu.items import (
    AsyncOpsWindow,
    PresentationContextAC,
    PresentationContextRQ,
    RoleSelection,
    SOPClassCommonExtendedNegotiation,
    SOPClassExtendedNegotiation,
    UnknownSubItem,
    UserIdentityAC,
    UserIdentityRQ,
    UserInformation,
)
from ups.pdu.pdus import (
    PDU,
    PDV,
    AAbort,
    AAssociateAC,
    AAssociateRJ,
    AAssociateRQ,
    AReleaseRP,
    AReleaseRQ,
    PDataTF,
)

uids = st.from_regex(r"\A[12](\.[1-9][0-9]{0,8}){1,6}\Z")
ae_titles = st.from_regex(r"\A[A-Za-z0-9_\-][A-Za-z0-9_ \-]{0,14}[A-Za-z0-9_\-]\Z|\A[A-Z]\Z")
context_ids = st.integers(0, 127).map(lambda n: 2 * n + 1)
small_bytes = st.binary(max_size=64)

user_information = st.builds(
    UserInformation,
    max_length=st.integers(0, 0xFFFFFFFF),
    implementation_class_uid=uids,
    implementation_version_name=st.none() | st.from_regex(r"\A[A-Z0-9_]{1,16}\Z"),
    async_ops_window=st.none()
    | st.builds(AsyncOpsWindow, st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)),
    role_selections=st.lists(
        st.builds(RoleSelection, uids, st.booleans(), st.booleans()), max_size=3
    ).map(tuple),
    sop_class_extended=st.lists(
        st.builds(SOPClassExtendedNegotiation, uids, small_bytes), max_size=2
    ).map(tuple),
    sop_class_common_extended=st.lists(
        st.builds(
            SOPClassCommonExtendedNegotiation, uids, uids, st.lists(uids, max_size=3).map(tuple)
        ),
        max_size=2,
    ).map(tuple),
    user_identity_rq=st.none()
    | st.builds(
        UserIdentityRQ,
        st.sampled_from(UserIdentityType),
        st.booleans(),
        st.binary(min_size=1, max_size=40),
        small_bytes,
    ),
    user_identity_ac=st.none() | st.builds(UserIdentityAC, small_bytes),
    unknown=st.lists(
        st.builds(UnknownSubItem, st.integers(0x60, 0xFF), small_bytes), max_size=2
    ).map(tuple),
)


@st.composite
def rq_contexts(draw: st.DrawFn) -> tuple[PresentationContextRQ, ...]:
    ids = draw(st.lists(context_ids, min_size=1, max_size=5, unique=True))
    return tuple(
        PresentationContextRQ(i, draw(uids), tuple(draw(st.lists(uids, min_size=1, max_size=3))))
        for i in ids
    )


@st.composite
def ac_contexts(draw: st.DrawFn) -> tuple[PresentationContextAC, ...]:
    ids = draw(st.lists(context_ids, max_size=5, unique=True))
    return tuple(PresentationContextAC(i, ContextResult.ACCEPTANCE, draw(uids)) for i in ids)


associate_rq = st.builds(
    AAssociateRQ,
    ae_titles,
    ae_titles,
    rq_contexts(),
    user_information,
    uids,
    st.integers(0, 0xFFFF),
)
associate_ac = st.builds(
    AAssociateAC,
    ae_titles,
    ae_titles,
    ac_contexts(),
    user_information,
    uids,
    st.integers(0, 0xFFFF),
)
associate_rj = st.builds(
    AAssociateRJ, st.sampled_from(RejectResult), st.sampled_from(RejectSource), st.integers(0, 255)
)
pdvs = st.builds(PDV, context_ids, st.booleans(), st.booleans(), st.binary(max_size=300))
pdata = st.builds(PDataTF, st.lists(pdvs, min_size=1, max_size=4).map(tuple))
abort = st.builds(
    AAbort,
    st.sampled_from([AbortSource.SERVICE_USER, AbortSource.SERVICE_PROVIDER]),
    st.sampled_from(AbortReason),
)

pdus: st.SearchStrategy[PDU] = st.one_of(
    associate_rq,
    associate_ac,
    associate_rj,
    pdata,
    st.just(AReleaseRQ()),
    st.just(AReleaseRP()),
    abort,
)
