"""The PS3.18 F.2 DICOM JSON Model of a data set, and JSON Lines.

* :func:`to_json_model` gives the DICOM JSON Model of a pydicom ``Dataset``, binary
  values inline as base64 (F.2.7) up to a limit, larger ones as a BulkDataURI (F.2.6);
* :func:`json_line` serialises one object as a single compact line (JSON Lines), so a
  stream of results can be split on newlines.

The command line prints results with them and the event sinks
(:mod:`ups.services.eventjson`) build their payloads on them, so they live in the
library. (The listener's per-event path does not come here: the scanner renders the
model from the bytes, :func:`ups.dimse.scanner.dataset_json`.)
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Iterable
from typing import Any, cast

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag

__all__ = ["DEFAULT_INLINE_LIMIT", "is_multi", "json_line", "to_json_model"]

DEFAULT_INLINE_LIMIT = 1024 * 1024
"""Largest binary value (bytes) written as InlineBinary by :func:`to_json_model`."""

_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})


def is_multi(value: object) -> bool:
    """Whether a stored value holds several values (PersonName is iterable, but one)."""
    return isinstance(value, MultiValue | list | tuple)


def to_json_model(
    ds: Dataset,
    *,
    inline_limit: int = DEFAULT_INLINE_LIMIT,
    bulk_data_uri: Callable[[DataElement], str] | None = None,
) -> dict[str, Any]:
    """The PS3.18 F.2 DICOM JSON Model object of ``ds``.

    Binary values (OB, OD, OF, OL, OV, OW, UN) of up to ``inline_limit`` bytes are
    written as ``InlineBinary`` (F.2.7). A larger one becomes a ``BulkDataURI``
    (F.2.6): the URI ``bulk_data_uri`` returns for it, or by default
    ``urn:dcmups:omitted-bulk-data:<length>``, which says the value was left out.
    Attributes without a value carry only their ``vr`` (F.2.5). Group lengths are
    left out (F.2.2).
    """
    model: dict[str, Any] = {}
    for elem in ds:
        if BaseTag(elem.tag).element == 0:
            continue
        model[f"{elem.tag:08X}"] = _json_attribute(elem, inline_limit, bulk_data_uri)
    return model


def _json_attribute(
    elem: DataElement,
    inline_limit: int,
    bulk_data_uri: Callable[[DataElement], str] | None,
) -> dict[str, Any]:
    vr = str(elem.VR).split(" or ")[0]
    if vr == "SQ":
        items = [
            to_json_model(i, inline_limit=inline_limit, bulk_data_uri=bulk_data_uri)
            for i in elem.value
        ]
        return {"vr": vr, "Value": items} if items else {"vr": vr}
    if elem.is_empty:
        return {"vr": vr}
    value = elem.value
    if isinstance(value, bytes | bytearray) and vr in _BINARY_VRS:
        if len(value) > inline_limit:
            uri = (
                bulk_data_uri(elem)
                if bulk_data_uri is not None
                else f"urn:dcmups:omitted-bulk-data:{len(value)}"
            )
            return {"vr": vr, "BulkDataURI": uri}
        return {"vr": vr, "InlineBinary": base64.b64encode(value).decode("ascii")}
    try:
        attr: dict[str, Any] = elem.to_json_dict(None, 0)
    except Exception:  # an invalid stored value: fall back to its text form
        values = list(value) if is_multi(value) else [value]
        attr = {"Value": [str(v) for v in values]}
    return {"vr": vr, **{k: v for k, v in attr.items() if k != "vr"}}


def json_line(obj: dict[str, Any]) -> str:
    """One compact JSON object on one line (no newline inside or at the end).

    Non-finite floats (NaN, Infinity), which JSON cannot carry, become strings;
    U+2028/U+2029 are escaped because some readers split lines on them.
    """
    options: dict[str, Any] = {
        "ensure_ascii": False,
        "separators": (",", ":"),
        "allow_nan": False,
        "default": _json_default,
    }
    try:
        text = json.dumps(obj, **options)
    except ValueError:
        text = json.dumps(_finite(obj), **options)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _json_default(obj: object) -> Any:
    if isinstance(obj, Dataset):
        return to_json_model(obj)
    if isinstance(obj, bytes | bytearray):
        return base64.b64encode(obj).decode("ascii")
    if is_multi(obj):
        return list(cast(Iterable[Any], obj))
    return str(obj)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj).replace("inf", "Infinity").replace("nan", "NaN")
    if isinstance(obj, dict):
        return {key: _finite(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(value) for value in obj]
    return obj
