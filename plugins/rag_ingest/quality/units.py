"""A gate fact's value as a person reads it: a time as a date, a size in bytes, a
length in characters or tokens. The facts columns are named in `facts`; a
column not listed here is shown as it is."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

_COUNTED = {
    "text_chars": "characters",
    "token_count": "tokens",
    "vector_length": "dimensions",
    "model_dimension": "dimensions",
}
_TIMES = {"modified_epoch"}
_BYTES = {"size"}


def _size(value: float) -> str:
    text = f"{int(value):,} bytes"
    for unit, factor in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= factor:
            return f"{text} ({value / factor:.1f} {unit})"
    return text


def shown(column: str | None, value: Any) -> str:
    """`value` of the facts column `column`, in its unit."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing" if column != "norm" else "NaN"
    if isinstance(value, bool):
        return str(value).lower()
    if column in _TIMES and isinstance(value, int | float):
        try:
            moment = datetime.fromtimestamp(float(value), UTC)
        except (OverflowError, OSError, ValueError):
            return f"{value} (seconds since 1970, out of range)"
        return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    if column in _BYTES and isinstance(value, int | float):
        return _size(float(value))
    if column in _COUNTED and isinstance(value, int | float):
        return f"{int(value):,} {_COUNTED[column]}"
    if column == "norm" and isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
