"""The few variables a backtest on a file reads, without the typed settings.

``tradebot backtest --csv`` (or ``--sample``) reads seven risk limits, ``TRADEBOT_DASK_SCHEDULER``
and ``TRADEBOT_PURE_PYTHON``, nothing else. Building the whole ``Settings`` model for them would
import pydantic, about a sixth of the command's CPU on a million bars (issue 10), so this module
reads exactly those variables, environment over ``.env`` as ``Settings.load`` does, with the same
rules and the same one-line messages (a test holds the two readers equal on valid and invalid
values). The variables a backtest on a file does not read are left to the commands that use them
(``tradebot config``, ``doctor``, ``tick``, ``run``); a download (``--symbol``, ``--symbols``)
needs keys and URLs and reads the full ``Settings``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from bot.backtest.dask_address import scheduler_address
from bot.risk import BOUNDS, RiskLimits

_INT = re.compile(r"[+-]?\d+(?:_\d+)*(?:\.0+)?")
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})
_WHOLE = {f.name for f in fields(RiskLimits) if f.type in (int, "int")}


class BacktestConfigError(ValueError):
    """Variables the backtest reads have values it cannot use; ``lines`` has one per variable."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("\n".join(lines))


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    """What a backtest on a file reads from the configuration. The risk limits carry the
    ``Settings`` attribute names, so ``RiskLimits.from_settings`` takes either object."""

    risk_per_trade_pct: float
    max_position_pct: float
    stop_loss_pct: float
    take_profit_pct: float
    max_portfolio_risk_pct: float
    max_open_trades: int
    daily_loss_limit_pct: float
    tradebot_dask_scheduler: str = ""
    tradebot_pure_python: bool = False


def load_backtest_config(
    environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env"
) -> BacktestConfig:
    """The backtest's variables, environment over ``.env``; ``BacktestConfigError`` lists every
    value it cannot use."""
    dotenv = _read_env_file(env_file)
    env = os.environ if environ is None else environ

    def raw(name: str) -> str | None:
        key = name.upper()
        return env[key] if key in env else dotenv.get(key)

    def came_from(name: str) -> str:  # worded as bot.config.loading.came_from words it
        return "; set in the environment" if name.upper() in env else "; set in .env"

    values: dict[str, object] = {}
    problems: list[str] = []
    defaults = RiskLimits()
    for name in BOUNDS:
        text = raw(name)
        if text is None:
            values[name] = getattr(defaults, name)
            continue
        number, problem = _risk_value(name, text)
        if problem:
            problems.append(problem + came_from(name))
        values[name] = number
    scheduler = raw("tradebot_dask_scheduler")
    values["tradebot_dask_scheduler"] = ""
    if scheduler is not None:
        try:
            values["tradebot_dask_scheduler"] = scheduler_address(scheduler)
        except ValueError as exc:
            problems.append(
                f"TRADEBOT_DASK_SCHEDULER={_shown(scheduler)} is invalid: {exc}"
                + came_from("tradebot_dask_scheduler")
            )
    pure = raw("tradebot_pure_python")
    if pure is not None:
        if pure.lower() in _TRUE | _FALSE:
            values["tradebot_pure_python"] = pure.lower() in _TRUE
        else:
            problems.append(
                f"TRADEBOT_PURE_PYTHON={_shown(pure)} is invalid: allowed true or false"
                + came_from("tradebot_pure_python")
            )
    if problems:
        raise BacktestConfigError(problems)
    return BacktestConfig(**values)  # type: ignore[arg-type]


def _risk_value(name: str, text: str) -> tuple[float, str]:
    """The limit's value, or a message worded as the ``Settings`` loader words it."""
    low, high = BOUNDS[name]
    stripped = text.strip()
    value: float | None = None
    if stripped.isascii():
        if name in _WHOLE:
            if _INT.fullmatch(stripped):
                value = int(stripped.split(".")[0])
        else:
            try:
                value = float(stripped)
            except ValueError:
                value = None
    head = f"{name.upper()}={_shown(text)} is invalid: allowed"
    note = "(the bounds /risk set allows)"
    if value is None:
        kind = "a whole number" if name in _WHOLE else "a number"
        return 0.0, f"{head} {kind} from {low:g} to {high:g} {note}"
    if not low <= value <= high:  # also refuses NaN
        return 0.0, f"{head} a number from {low:g} to {high:g} {note}"
    return value, ""


def _shown(value: str, limit: int = 60) -> str:
    if len(value) > limit:
        return repr(value[:limit]) + f" (+{len(value) - limit} characters)"
    return repr(value)


def _read_env_file(env_file: str | Path | None) -> dict[str, str]:
    if env_file is None or not Path(env_file).is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(env_file).items() if v is not None}
