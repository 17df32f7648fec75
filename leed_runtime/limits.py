"""The range of a numeric option, stated once where the option is declared, checked one way by
every command: `leed-run`'s flags (`run.LIMITS`), `leed-train`'s config fields (`option(min=...)`),
`leed-export`, `leed-eval` and `leed-synth`. A value outside it, and a float that is NaN or
infinite, is one line: `--log-every must be >= 1, got 0`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from leed_runtime.errors import LeedError

BOUNDS = ("min", "max", "above", "below")  # a number's declared range: >=, <=, >, <


def _number(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def bounds_text(bounds: Mapping[str, Any]) -> str:
    """The declared range in words, e.g. `>= 0 and < 0.5` ("" when none is declared)."""
    ops = {"min": ">=", "max": "<=", "above": ">", "below": "<"}
    return " and ".join(f"{ops[k]} {_number(bounds[k])}" for k in BOUNDS if k in bounds)


def bounds_problem(value: float, bounds: Mapping[str, Any]) -> str | None:
    """Why a number is outside its declared range (NaN and infinities always are), or None."""
    lo, hi = bounds.get("min", -math.inf), bounds.get("max", math.inf)
    above, below = bounds.get("above", -math.inf), bounds.get("below", math.inf)
    finite = isinstance(value, int) or math.isfinite(value)  # (an int is; a huge one overflows isfinite)
    if finite and lo <= value <= hi and above < value < below:
        return None
    return f"must be {bounds_text(bounds) or 'a finite number'}, got {_number(value)}"


def check_number(flag: str, value: float, **bounds: Any) -> None:
    """LeedError `FLAG must be >= 1, got 0` when `value` is outside `bounds` (see `bounds_problem`)."""
    problem = bounds_problem(value, bounds)
    if problem:
        raise LeedError(f"{flag} {problem}")


@dataclass(frozen=True)
class Limit:
    """The values one numeric command-line option accepts: its `bounds` (`min`, `max`, `above`,
    `below`), whole numbers only (`integer`), and what the values mean, for the message."""

    bounds: dict[str, float] = field(default_factory=dict)
    integer: bool = False
    meaning: str = ""

    @property
    def lo(self) -> float:
        return self.bounds.get("min", self.bounds.get("above", -math.inf))

    @property
    def hi(self) -> float | None:
        return self.bounds.get("max", self.bounds.get("below"))

    def text(self) -> str:
        """The range in words, e.g. '>= 0 and <= 2; 1 = ...' (for --help)."""
        kind = "a whole number " if self.integer else ""
        return f"{kind}{bounds_text(self.bounds)}" + (f"; {self.meaning}" if self.meaning else "")

    def check(self, flag: str, value: object) -> int | float:
        """`value` (a number or its text) as an int or a finite float inside the range; else a
        one-line LeedError naming `flag`, the value and the range."""
        try:
            number = int(str(value).strip()) if self.integer else float(str(value).strip())
        except ValueError:
            want = "a whole number" if self.integer else "a number"
            raise LeedError(f"{flag} must be {want} {bounds_text(self.bounds)}, got {value!r}") from None
        problem = bounds_problem(number, self.bounds)
        if problem:
            raise LeedError(f"{flag} {problem}" + (f" ({self.meaning})" if self.meaning else ""))
        return number
