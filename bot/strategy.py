"""The strategy contract: what a plugin's strategy class looks like.

A strategy computes, vectorised over a whole ``Bars`` series, one signal per bar:
``+1`` enter long on that bar's close, ``-1`` exit, ``0`` nothing. The backtester reads
the whole column; the live engine reads the last row. One code path serves both, so what
was backtested is what trades.

Strategies never place orders, size positions or touch the database: they only compute.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from bot.bars import Bars

BUY = 1
SELL = -1


class StrategyError(ValueError):
    """A strategy or its parameters are unusable; the message says why, for a human."""


@dataclass(frozen=True, slots=True)
class Param:
    """One tunable parameter, with its default and the bounds it is checked against."""

    default: float | int
    min: float | None = None
    max: float | None = None
    help: str = ""

    @property
    def kind(self) -> type:
        return int if isinstance(self.default, int) and not isinstance(self.default, bool) else float

    def coerce(self, name: str, value: Any) -> float | int:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise StrategyError(f"parameter {name}={value!r} is not a number") from None
        if not math.isfinite(number):
            raise StrategyError(f"parameter {name}={value!r} must be finite")
        if self.kind is int:
            if number != int(number):
                raise StrategyError(f"parameter {name}={value!r} must be a whole number")
            number = int(number)
        if self.min is not None and number < self.min:
            raise StrategyError(f"parameter {name}={value} is below its minimum {self.min}")
        if self.max is not None and number > self.max:
            raise StrategyError(f"parameter {name}={value} is above its maximum {self.max}")
        return number


@dataclass(frozen=True, slots=True)
class StrategyOutput:
    """``signal``: int8 per bar (+1 buy, -1 sell, 0 none). ``lines``: series to draw on charts."""

    signal: np.ndarray
    lines: dict[str, np.ndarray] = field(default_factory=dict)
    # Optional per-bar protective levels a strategy may suggest for an entry (NaN: use risk defaults).
    stop: np.ndarray | None = None


class Strategy(ABC):
    """Base class for strategies. Subclasses set ``name``, ``params`` and implement ``compute``.

    Example::

        class Breakout(Strategy):
            name = "breakout"
            description = "Buy a close above the highest high of the last N bars."
            params = {"lookback": Param(20, min=2, max=500)}

            @property
            def warmup(self) -> int:
                return self.lookback + 1

            def compute(self, bars):
                ...
                return StrategyOutput(signal=signal)
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    params: ClassVar[dict[str, Param]] = {}

    def __init__(self, **values: Any) -> None:
        unknown = sorted(set(values) - set(self.params))
        if unknown:
            known = ", ".join(self.params) or "none"
            raise StrategyError(f"{self.name}: unknown parameter {', '.join(unknown)} (known: {known})")
        self.values: dict[str, float | int] = {
            key: spec.coerce(key, values.get(key, spec.default)) for key, spec in self.params.items()
        }

    def __getattr__(self, item: str) -> Any:
        values = self.__dict__.get("values")
        if values is not None and item in values:
            return values[item]
        raise AttributeError(item)

    @property
    def warmup(self) -> int:
        """Bars needed before the first signal can appear."""
        return 1

    @property
    def label(self) -> str:
        """``name(k=v,...)``: how logs, orders and the database name this configured strategy."""
        args = ",".join(f"{k}={v:g}" for k, v in self.values.items())
        return f"{self.name}({args})" if args else self.name

    @abstractmethod
    def compute(self, bars: Bars) -> StrategyOutput:
        """Return the signal for every bar in ``bars`` (vectorised)."""

    def __repr__(self) -> str:
        return f"<Strategy {self.label}>"


def parse_params(text: str) -> dict[str, str]:
    """``"period=10,multiplier=3"`` -> ``{"period": "10", "multiplier": "3"}``."""
    out: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise StrategyError(f"malformed parameter {item!r}: write name=value")
        if key.strip() in out:  # the last one silently winning would trade something else
            raise StrategyError(f"parameter {key.strip()} is given twice")
        out[key.strip()] = value.strip()
    return out
