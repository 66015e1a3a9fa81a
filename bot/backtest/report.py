"""Statistics of a simulation, as a table for people and as JSON for programs.

The statistics are pure functions of the equity curve and the trades (``bot.metrics``, the
same functions /pnl uses). Sharpe and Sortino are annualised with the number of bars per
year the data actually has: 525,600 for 24/7 one-minute crypto bars, about 98,000 for
one-minute bars of US stocks in regular hours, about 252 for daily stock bars.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from bot import kernels, metrics
from bot.backtest.engine import (
    ENTRY_BAR,
    ENTRY_PRICE,
    EXIT_BAR,
    EXIT_PRICE,
    PNL,
    QTY,
    REASON,
    REASONS,
    Simulation,
)
from bot.backtest.result import BacktestResult, Stats
from bot.bars import NS, Bars, Timeframe

YEAR_SECONDS = 365 * 86_400
# Metrics a sweep can rank by, and whether bigger is better.
RANKABLE = {
    "sharpe": True,
    "sortino": True,
    "return_pct": True,
    "final_equity": True,
    "profit_factor": True,
    "win_rate": True,
    "max_drawdown_pct": False,
    "exposure_pct": True,
    "n_trades": True,
}


def bars_per_year(bars: Bars, timeframe: Timeframe | None = None) -> float:
    """Bars per year in this data (its count over its time span); the timeframe's 24/7 figure
    when the data is too short to tell."""
    if len(bars) >= 2 and bars.time[-1] > bars.time[0]:
        span_years = (int(bars.time[-1]) - int(bars.time[0])) / NS / YEAR_SECONDS
        return (len(bars) - 1) / span_years
    return timeframe.periods_per_year if timeframe else 252.0


TRADING_DAYS = 252  # a year of US stock sessions
WEEKDAYS = 260  # a year of a market open around the clock on weekdays (forex): 52 weeks of 5 days
REGULAR_SESSION = 23_400  # 09:30 to 16:00 New York
EXTENDED_SESSION = 57_600  # 04:00 to 20:00 New York, pre-market and after hours included
_HOUR = 3_600


def timeframe_bars_per_year(bars: Bars, timeframe: Timeframe | None) -> float:
    """Bars per year of the timeframe on the market's calendar: what walk-forward windows are
    annualised with, so that adding later bars never changes an earlier window's figures.

    The calendar is read from when bars start (UTC), a property of the market rather than of
    how much history there is:
    - around the clock (crypto, the synthetic market): a bar between Saturday 06:00 and Sunday
      20:00, when no stock or forex market trades: 365 days of the timeframe;
    - weekdays around the clock (forex): a weekday bar between 02:00 and 07:00, when US stocks
      do not trade (pre-market opens at 08:00 or 09:00): 260 days of 24 hours;
    - US stocks otherwise: 252 sessions; intraday, the bars of a 16-hour extended session when
      any bar starts outside 13:30 to 21:00, else of the 6.5-hour regular one, rounded up (390
      one-minute bars, 7 hourly bars).
    A daily bar counts one a day (365, else 252), weekly and longer bars by the calendar.
    Without a timeframe (irregular spacing), the most common spacing between bars stands for it."""
    if timeframe is None:
        steps = np.diff(bars.time[:100_001])
        steps = steps[steps > 0]
        if not len(steps):
            return float(TRADING_DAYS)
        values, counts = np.unique(steps, return_counts=True)
        timeframe = Timeframe(max(1, round(int(values[counts.argmax()]) / NS)))
    seconds = timeframe.seconds
    day, week = _day_and_week_seconds(bars)
    if seconds >= 7 * 86_400 or _between(week, 5 * 86_400 + 6 * _HOUR, 6 * 86_400 + 20 * _HOUR):
        return timeframe.periods_per_year
    if seconds >= 86_400:
        return TRADING_DAYS * 86_400 / seconds
    if _between(day, 2 * _HOUR, 7 * _HOUR):
        return WEEKDAYS * 86_400 / seconds
    session = (
        EXTENDED_SESSION if (~_between_mask(day, 13 * _HOUR + 1_800, 21 * _HOUR)).any() else REGULAR_SESSION
    )
    return float(TRADING_DAYS * math.ceil(session / seconds))


def _day_and_week_seconds(bars: Bars) -> tuple[np.ndarray, np.ndarray]:
    """Each bar's start in seconds of its UTC day and of its week (0 = Monday 00:00)."""
    seconds = bars.time // NS
    return seconds % 86_400, (seconds + 3 * 86_400) % (7 * 86_400)  # 1970-01-01 was a Thursday


def _between_mask(values: np.ndarray, low: int, high: int) -> np.ndarray:
    return (values >= low) & (values < high)


def _between(values: np.ndarray, low: int, high: int) -> bool:
    return bool(_between_mask(values, low, high).any())


def compute_stats(
    sim: Simulation, cash: float, periods_per_year: float, returns: np.ndarray | None = None
) -> Stats:
    """The statistics of a run; ``returns`` is ``metrics.returns(sim.equity)`` when the caller has it."""
    equity = sim.equity
    pnls = sim.column(PNL)
    final = float(equity[-1]) if len(equity) else cash
    # Trades never share a bar (an exit at an open needs the sell signal of a bar still held),
    # so the bars held are the sum of each trade's entry-to-exit span, inclusive.
    held = float((sim.column(EXIT_BAR) - sim.column(ENTRY_BAR) + 1).sum())
    exposure = 100.0 * held / len(equity) if len(equity) else 0.0
    r = metrics.returns(equity) if returns is None else returns
    return Stats(
        final_equity=final,
        return_pct=(final / cash - 1.0) * 100.0,
        sharpe=metrics.sharpe_of_returns(r, periods_per_year),
        sortino=metrics.sortino_of_returns(r, periods_per_year),
        max_drawdown_pct=metrics.max_drawdown_pct(equity),
        win_rate=metrics.win_rate(pnls),
        profit_factor=metrics.profit_factor(pnls),
        exposure_pct=exposure,
        n_trades=sim.n_trades,
    )


_TWO_DIGITS = np.array([[48 + i // 10, 48 + i % 10] for i in range(100)], dtype=np.uint8)


def iso_bytes(ns: np.ndarray) -> np.ndarray:
    """int64 ns -> ``2024-01-31T09:30:00Z`` as a (n, 20) array of ASCII bytes, whole seconds
    (rounded down), for years 0 to 9999. Dates are worked out once per run of equal days
    (H. Hinnant's ``civil_from_days``, vectorised), times of day looked up in a table: a
    million bar times take ~25 ms, numpy's datetime strings ten times that."""
    seconds = np.asarray(ns, dtype=np.int64) // NS
    days = seconds // 86_400
    out = np.empty((len(days), 20), dtype=np.uint8)
    if len(days) == 0:
        return out
    change = np.empty(len(days), dtype=bool)
    change[0] = True
    np.not_equal(days[1:], days[:-1], out=change[1:])
    starts = np.flatnonzero(change)
    out[:, :10] = _dates(days[starts])[np.cumsum(change) - 1]
    out[:, 10:] = _times_of_day()[(seconds - days * 86_400).astype(np.int32)]
    return out


def _dates(days: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 -> ``YYYY-MM-DD`` as (n, 10) ASCII bytes."""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1_460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    out = np.empty((len(days), 10), dtype=np.uint8)
    out[:, 4] = out[:, 7] = ord("-")
    out[:, 0:2] = _TWO_DIGITS[year // 100]
    out[:, 2:4] = _TWO_DIGITS[year % 100]
    out[:, 5:7] = _TWO_DIGITS[month]
    out[:, 8:10] = _TWO_DIGITS[doy - (153 * mp + 2) // 5 + 1]
    return out


_TIME_TABLE: list[np.ndarray] = []


def _times_of_day() -> np.ndarray:
    """``THH:MM:SSZ`` for every second of a day, (86400, 10) ASCII bytes, built once."""
    if not _TIME_TABLE:
        second = np.arange(86_400)
        table = np.empty((86_400, 10), dtype=np.uint8)
        table[:, 0], table[:, 3], table[:, 6], table[:, 9] = ord("T"), ord(":"), ord(":"), ord("Z")
        table[:, 1:3] = _TWO_DIGITS[second // 3_600]
        table[:, 4:6] = _TWO_DIGITS[second // 60 % 60]
        table[:, 7:9] = _TWO_DIGITS[second % 60]
        _TIME_TABLE.append(table)
    return _TIME_TABLE[0]


def iso_times(ns: np.ndarray) -> list[str]:
    """int64 ns -> ``2024-01-31T09:30:00Z`` strings."""
    return iso_bytes(ns).view("S20").ravel().astype(str).tolist()


def trade_rows(result: BacktestResult) -> list[dict[str, Any]]:
    sim, times = result.sim, result.bars.time
    entry_times = iso_times(times[sim.column(ENTRY_BAR).astype(np.int64)])
    exit_times = iso_times(times[sim.column(EXIT_BAR).astype(np.int64)])
    rows = []
    for i, row in enumerate(sim.trades.tolist()):
        rows.append(
            {
                "entry_time": entry_times[i],
                "exit_time": exit_times[i],
                "entry_price": row[ENTRY_PRICE],
                "exit_price": row[EXIT_PRICE],
                "qty": row[QTY],
                "pnl": row[PNL],
                "exit_reason": str(REASONS[int(row[REASON])]),
            }
        )
    return rows


def to_json(
    result: BacktestResult, *, curve: bool = True, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Exactly the documented keys; ``profit_factor`` is null when there was no losing trade.
    ``extra`` (a sweep's ``overfitting``) comes after the statistics, before the curve."""
    stats: dict[str, Any] = dict(result.stats.as_dict())
    if not math.isfinite(stats["profit_factor"]):
        stats["profit_factor"] = None
    doc: dict[str, Any] = {"trades": trade_rows(result), **stats, **(extra or {})}
    if curve:
        times = iso_times(result.bars.time)
        doc["equity_curve"] = [
            {"time": t, "equity": e} for t, e in zip(times, result.sim.equity.tolist(), strict=True)
        ]
    return doc


CURVE_CHUNK = 1 << 16  # equity-curve points formatted at a time: memory stays a few MB


def write_json(result: BacktestResult, path: str | Path, extra: dict[str, Any] | None = None) -> None:
    """``to_json`` as a file. The equity curve (a point per bar: a million for a million bars) is
    written as text in chunks, formatted by pyarrow and C (``_curve_points``) rather than per point
    in Python: about 0.1 s of CPU and a few MB per million points, where building and encoding
    dicts took 1.3 s and hundreds of MB. The numbers are the shortest text that reads back as the
    same float."""
    write_document(to_json(result, curve=False, extra=extra), result.bars.time, result.sim.equity, path)


CURVE_THREADS = 2  # chunks formatted at once: pyarrow and the C kernel let go of the GIL


def write_document(doc: dict[str, Any], times: np.ndarray, equity: np.ndarray, path: str | Path) -> None:
    """``doc`` as JSON with an ``equity_curve`` of ``times`` and ``equity`` appended, written
    as ``write_json`` writes it (the portfolio and walk-forward reports use it too). Chunks are
    formatted on ``CURVE_THREADS`` threads and written in order, at most one more than the
    threads held at a time."""
    head = json.dumps(doc, separators=(",", ":"))
    starts = range(0, len(times), CURVE_CHUNK)

    def points(start: int) -> memoryview:
        return _curve_points(times[start : start + CURVE_CHUNK], equity[start : start + CURVE_CHUNK])

    with Path(path).open("wb") as out:
        out.write(f'{head[:-1]},"equity_curve":['.encode())
        for start, text in zip(starts, _in_order(points, starts), strict=True):
            out.write(text[2:] if start == 0 else text)  # each point starts by closing the one before
        out.write(b"}]}\n" if len(times) else b"]}\n")


def _in_order(work: Any, items: range) -> Any:
    """``map(work, items)`` on ``CURVE_THREADS`` threads, yielding in order, a bounded few ahead."""
    if len(items) < 2:
        yield from map(work, items)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(CURVE_THREADS) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(work, item))
            if len(pending) > CURVE_THREADS:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


_POINT_HEAD = np.frombuffer(b'},{"time":"' + b"0" * 20 + b'","equity":', dtype=np.uint8)


def _curve_points(times: np.ndarray, equity: np.ndarray, impl: str | None = None) -> memoryview:
    """``},{"time":"...","equity":...`` for each point, concatenated (the caller drops the first
    two bytes and closes the last point). The numbers are pyarrow's; the rest is put together by
    ``json_curve`` in bot/_speedups.c when it is built (``impl`` "c" or "python" to choose, for
    the tests), else by pyarrow's compute functions, the same bytes. Everything reaches pyarrow as
    buffers: ``pa.array`` and ``pa.scalar`` import pandas, which costs half a second."""
    n = len(times)
    # The equity stays put while flat (half the bars or more): format each new value once.
    values = np.ascontiguousarray(equity, dtype=np.float64)
    change = np.empty(n, dtype=bool)
    change[:1] = True
    bits = values.view(np.int64)  # bit for bit: -0.0 stays apart from 0.0
    np.not_equal(bits[1:], bits[:-1], out=change[1:])
    numbers = _numbers(np.ascontiguousarray(values[change]))
    which = np.cumsum(change, dtype=np.int64) - 1
    backend = kernels.C if impl == "c" else None if impl == "python" else kernels.default_backend()
    if backend is not None:
        offsets = np.frombuffer(
            numbers.buffers()[1], dtype=np.int32, count=len(numbers) + 1, offset=numbers.offset * 4
        )
        stamps = np.ascontiguousarray(times, dtype=np.int64)
        return memoryview(backend.json_curve(stamps, which, offsets, numbers.buffers()[2]))
    return _curve_points_arrow(times, numbers, which)


def _curve_points_arrow(times: np.ndarray, numbers, which: np.ndarray) -> memoryview:
    """``_curve_points`` with pyarrow's compute functions: the definition ``json_curve`` follows."""
    import pyarrow as pa

    call = _arrow_call()
    n = len(times)
    width = len(_POINT_HEAD)
    heads = np.empty((n, width), dtype=np.uint8)
    heads[:] = _POINT_HEAD
    heads[:, 11:31] = iso_bytes(times)
    heads_array = _string_array(heads, np.arange(0, width * n + 1, width, dtype=np.int32))
    if len(numbers) < n:
        numbers = call("take", [numbers, pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(which)])])
    nothing = _string_array(b"", np.zeros(n + 1, dtype=np.int32))  # the separator, per point
    points = call("binary_join_element_wise", [heads_array, numbers, nothing])
    offsets = np.frombuffer(points.buffers()[1], dtype=np.int32, count=n + 1, offset=points.offset * 4)
    return memoryview(points.buffers()[2])[offsets[0] : offsets[-1]]


def _numbers(values: np.ndarray):
    """Floats as the shortest text that reads back as the same float, always with a decimal
    point or an exponent (pyarrow writes 10000.0 as "10000", which JSON readers take for an int)."""
    import pyarrow as pa

    call = _arrow_call()
    numbers = call(
        "cast",
        [pa.Array.from_buffers(pa.float64(), len(values), [None, pa.py_buffer(values)])],
        call.cast_options(pa.string()),
    )
    whole = values == np.trunc(values)
    if whole.any():
        texts = [repr(x).encode() for x in values[whole].tolist()]
        offsets = np.zeros(len(texts) + 1, dtype=np.int32)
        np.cumsum([len(t) for t in texts], out=offsets[1:])
        bits = np.packbits(whole, bitorder="little")
        mask = pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)])
        numbers = call("replace_with_mask", [numbers, mask, _string_array(b"".join(texts), offsets)])
    return numbers


class _ArrowCall:
    """pyarrow's compute functions by name. ``pyarrow._compute`` has them without the 30 ms that
    importing ``pyarrow.compute`` spends generating a Python wrapper for each of ~300 functions."""

    def __init__(self) -> None:
        try:
            from pyarrow._compute import CastOptions, call_function
        except ImportError:  # a pyarrow that moved it: the public module has both too
            from pyarrow.compute import CastOptions, call_function
        self.call_function = call_function
        self.cast_options = CastOptions

    def __call__(self, name: str, args: list, options: object = None):
        return self.call_function(name, args, options)


_ARROW: list[_ArrowCall] = []


def _arrow_call() -> _ArrowCall:
    if not _ARROW:
        _ARROW.append(_ArrowCall())
    return _ARROW[0]


def _string_array(data: bytes | np.ndarray, offsets: np.ndarray):
    import pyarrow as pa

    return pa.Array.from_buffers(
        pa.string(), len(offsets) - 1, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def leverage(result: BacktestResult) -> tuple[float, float]:
    """``(most, lowest_cash)``: the largest entry cost (commission included) as a multiple of the
    cash there was before it, and the lowest the cash went. Above 1x the run traded on money it
    did not have (only ``--fixed-qty`` can: the risk sizing is capped by the cash)."""
    sim = result.sim
    if not sim.n_trades:
        return 0.0, result.settings.cash
    # Between trades the account is all cash, and each trade's P&L includes its commissions.
    pnl = sim.column(PNL)
    before = result.settings.cash + np.concatenate(([0.0], np.cumsum(pnl)[:-1]))
    cost = sim.column(QTY) * sim.column(ENTRY_PRICE) * (1.0 + result.settings.commission)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(before > 0, cost / before, np.inf)
    return float(ratio.max()), float((before - cost).min())


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _ratio(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.2f}"


def format_stats(s: Stats) -> list[str]:
    """The statistics as aligned lines, one per figure."""
    return [
        f"  {'final equity':<18}{_money(s.final_equity):>16}",
        f"  {'return':<18}{s.return_pct:>+15.2f}%",
        f"  {'sharpe':<18}{_ratio(s.sharpe):>16}",
        f"  {'sortino':<18}{_ratio(s.sortino):>16}",
        f"  {'max drawdown':<18}{s.max_drawdown_pct:>15.2f}%",
        f"  {'win rate':<18}{s.win_rate:>15.2f}%",
        f"  {'profit factor':<18}{_ratio(s.profit_factor):>16}",
        f"  {'exposure':<18}{s.exposure_pct:>15.2f}%",
        f"  {'trades':<18}{s.n_trades:>16,}",
    ]


def format_report(result: BacktestResult, max_trades: int = 20) -> str:
    """The summary and the most recent trades, as aligned plain text."""
    s, bars = result.stats, result.bars
    first, last = iso_times(bars.time[[0, -1]])
    lines = [
        f"{result.strategy.label} on {result.source}: {len(bars):,} bars"
        f"{f' of {result.timeframe_label}' if result.timeframe_label else ''}, "
        f"{first} .. {last}",
        f"fill: {result.settings_line}",
    ]
    most, lowest = leverage(result)
    if most > 1 + 1e-9:
        times = "more than all" if math.isinf(most) else f"up to {most:,.2f}x"
        lines.append(
            f"LEVERAGE USED: positions cost {times} the cash at entry; cash went down to {_money(lowest)}"
        )
    lines += ["", *format_stats(s)]
    why = no_trade_reason(result)
    if why:
        lines += ["", f"note: {why}"]
    if s.n_trades:
        shown = result.sim.trades[-max_trades:]
        start = s.n_trades - len(shown)
        lines += ["", f"trades ({'all' if start == 0 else f'last {len(shown)} of {s.n_trades:,}'}):"]
        header = ("entry time", "exit time", "entry", "exit", "qty", "pnl", "reason")
        table = [header]
        entry_t = iso_times(bars.time[shown[:, ENTRY_BAR].astype(np.int64)])
        exit_t = iso_times(bars.time[shown[:, EXIT_BAR].astype(np.int64)])
        for i, row in enumerate(shown.tolist()):
            table.append(
                (
                    entry_t[i],
                    exit_t[i],
                    f"{row[ENTRY_PRICE]:,.4f}",
                    f"{row[EXIT_PRICE]:,.4f}",
                    f"{row[QTY]:,.6g}",
                    f"{row[PNL]:+,.2f}",
                    str(REASONS[int(row[REASON])]),
                )
            )
        widths = [max(len(r[c]) for r in table) for c in range(len(header))]
        for r in table:
            cells = [
                r[c].ljust(widths[c]) if c in (0, 1, 6) else r[c].rjust(widths[c]) for c in range(len(r))
            ]
            lines.append("  " + "  ".join(cells).rstrip())
    return "\n".join(lines)


def no_trade_reason(result: BacktestResult) -> str:
    """Why a backtest made no trade, in a sentence ("trades 0" alone read like a broken strategy
    on a one-row CSV); empty when it traded."""
    if result.stats.n_trades:
        return ""
    n, strategy = len(result.bars), result.strategy
    bars = f"{n:,} bar{'s' if n != 1 else ''}"
    if n <= strategy.warmup:
        return (
            f"no trade was possible: {strategy.label} needs {strategy.warmup:,} bars before its first "
            f"signal and one more to fill it at the next bar's open; the history has {bars}"
        )
    signal = np.asarray(result.output.signal)
    if not (signal[:-1] > 0).any():
        return f"{strategy.label} gave no buy signal in these {bars} (a signal on the last bar does nothing)"
    return (
        "every buy signal was sized to 0 units (the risk sizing: RISK_PER_TRADE_PCT, MAX_POSITION_PCT "
        "and the cash; --fixed-qty or --fractional size otherwise)"
    )
