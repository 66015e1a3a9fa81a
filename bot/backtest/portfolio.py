"""Portfolio backtests: one account over many symbols, with every entry check the live service applies.

The run is what ``Engine.tick()`` does on the simulated exchange when it runs at the close of
every bar (``tests/test_portfolio_parity.py`` replays the same bars through the real engine,
service and exchange and finds the same trades). The rules are ``bot.backtest.PORTFOLIO_RULES``;
the risk decisions are ``bot.risk``'s own functions and the fills ``bot.brokers.rules``', called
here exactly as ``TradingService`` and ``SimBroker`` call them.

It is event-driven rather than bar-by-bar: a position's exit (stop, target, sell signal or the
end of the data) is known the moment it opens, so only buy signals, exits and midnights are
visited, in the order the live cycle would meet them: at a tick, first the exchange's
protective exits (symbols in name order), then the day's opening equity at 00:00 UTC, then the
signals of the bars that just closed, symbol by symbol in the order given.
"""

from __future__ import annotations

import bisect
import heapq
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bot.backtest.engine import REASONS
from bot.bars import NS, Bars, Timeframe
from bot.brokers.rules import buy_refusal, fill_price, first_touch
from bot.domain import ExitReason, Position
from bot.risk import (
    Decision,
    PortfolioState,
    RiskLimits,
    check_entry,
    daily_loss_denial,
    max_open_trades_denial,
    position_size,
    protective_levels,
)
from bot.strategy import BUY, SELL, Strategy, StrategyError

DAY_NS = 86_400 * NS
_STOP, _SIGNAL_EXIT, _END = 0, 2, 3  # phases within a tick; 1 is the day's opening equity
_DAY = 1
_NEVER = np.iinfo(np.int64).max
_REASON_CODE = {reason: code for code, reason in enumerate(REASONS)}
# Denial reasons of bot.risk.check_entry, grouped for the summary (the text of each stays in bot.risk).
BLOCK_KINDS = (
    ("daily loss limit", "daily loss limit"),
    ("max open trades", "max open trades"),
    ("portfolio risk", "portfolio risk"),
    ("not enough cash", "cash"),
    ("exceeds", "max position size"),
    ("rounds to zero", "size rounds to zero"),
    ("already holding", "already held"),
)


@dataclass(frozen=True, slots=True)
class PortfolioSettings:
    """``cash``: starting cash. ``commission``: fraction of each fill's notional, as the simulated
    exchange charges it. ``slippage``: fraction by which each market fill (entries, signal exits,
    stops, the final close) is worse; the live simulator has none, so 0 replays it exactly.
    ``limits``: the risk limits, as ``RiskLimits.from_settings`` reads them for the live bot.
    ``fixed_qty``: units per entry instead of the risk sizing (like a manual /buy)."""

    cash: float = 10_000.0
    commission: float = 0.0
    slippage: float = 0.0
    limits: RiskLimits = field(default_factory=RiskLimits)
    fixed_qty: float | None = None

    def __post_init__(self) -> None:
        checks = {
            "cash": self.cash > 0,
            "commission": 0 <= self.commission < 1,
            "slippage": 0 <= self.slippage < 1,
            "fixed_qty": self.fixed_qty is None or self.fixed_qty > 0,
        }
        for name, ok in checks.items():
            value = getattr(self, name)
            if not ok or (value is not None and not math.isfinite(value)):
                raise ValueError(f"{name.replace('_', '-')}={value} is out of range")


@dataclass(frozen=True, slots=True)
class EntryCounts:
    """What became of the buy signals: opened, blocked by a risk check (by kind), refused by the
    exchange (cash with commission), or ignored because the symbol was already held."""

    signals: int
    opened: int
    blocked: dict[str, int]
    rejected: int
    ignored: int


@dataclass(frozen=True)
class PortfolioRun:
    """Trades (one row per round trip, columns as the names say), the equity at the close of every
    bar time any symbol has, and what became of the buy signals."""

    symbols: list[str]
    times: np.ndarray  # int64 ns: every bar start of any symbol, sorted
    equity: np.ndarray
    symbol: np.ndarray  # int: index into symbols
    entry_time: np.ndarray  # int64 ns: when the entry filled
    exit_time: np.ndarray  # int64 ns: when the exit filled (a stop or target: its bar's start)
    entry_price: np.ndarray
    exit_price: np.ndarray
    qty: np.ndarray
    pnl: np.ndarray
    commission: np.ndarray
    reason: np.ndarray  # int: index into bot.backtest.engine.REASONS
    entries: EntryCounts

    @property
    def n_trades(self) -> int:
        return len(self.pnl)


class _Series:
    """One symbol's bars and signals, with the price the exchange would fill at any moment."""

    def __init__(self, name: str, bars: Bars, strategy: Strategy, tf_ns: int) -> None:
        self.name, self.bars, self.tf_ns = name, bars, tf_ns
        self.time = np.ascontiguousarray(bars.time, dtype=np.int64)
        self.open, self.close = bars.open, bars.close
        output = strategy.compute(bars)
        if len(output.signal) != len(bars):
            raise StrategyError(
                f"{strategy.label} returned {len(output.signal)} signals for {len(bars)} bars"
            )
        n = len(bars)
        index = np.arange(n)
        # The engine asks a strategy only once it has warmup + 1 bars; a signal on the last bar
        # would fill after the data ends.
        live = (index >= strategy.warmup) & (index < n - 1)
        signal = np.asarray(output.signal)
        self.buys = np.flatnonzero(live & (signal == BUY))
        self.sells = np.flatnonzero(live & (signal == SELL))
        self.stop_hint = None if output.stop is None else np.asarray(output.stop, dtype=np.float64)
        # Bars every timeframe without a gap (the usual case): a bar's index is arithmetic.
        self.first = int(self.time[0])
        self.regular = bool(n and int(self.time[-1]) - self.first == (n - 1) * tf_ns)
        self.regular = self.regular and bool((np.diff(self.time) == tf_ns).all())

    def price_at(self, t: int) -> float:
        """The price at instant ``t``, on the exchange's tick grid (``fill_price``): the open of
        the bar under way (or starting) then, else the close of the last bar before it
        (``tests/replay.py`` serves the live engine the same). Fills and marks both use it, as
        the simulated exchange fills and marks at its tick-grid price."""
        return fill_price(self.name, self.raw_price_at(t))

    def raw_price_at(self, t: int) -> float:
        """The bar's price at instant ``t`` as the data has it (slippage applies to this)."""
        if self.regular:
            j = min((t - self.first) // self.tf_ns, len(self.time) - 1) if t >= self.first else -1
        else:
            j = int(np.searchsorted(self.time, t, "right")) - 1
        if j < 0:
            return math.nan
        if self.time.item(j) + self.tf_ns > t:
            return self.open.item(j)
        return self.close.item(j)


class _Open:
    """A position as both sets of books hold it, and how it will end (known when it opens)."""

    __slots__ = (
        "entry_fee",
        "entry_time",
        "exit_price",
        "exit_reason",
        "exit_time",
        "price",
        "qty",
        "stop",
        "target",
    )

    def __init__(
        self, qty: float, price: float, entry_fee: float, entry_time: int, stop: float, target: float
    ) -> None:
        self.qty, self.price, self.entry_fee, self.entry_time = qty, price, entry_fee, entry_time
        self.stop, self.target = stop, target
        self.exit_time, self.exit_price, self.exit_reason = 0, 0.0, ExitReason.END_OF_DATA


def simulate_portfolio(
    bars: dict[str, Bars],
    strategy: Strategy,
    timeframe: Timeframe,
    settings: PortfolioSettings | None = None,
) -> PortfolioRun:
    """Trade ``strategy`` on every symbol of ``bars`` (in that order) from one account."""
    settings = settings or PortfolioSettings()
    if not bars:
        raise ValueError("no symbols to backtest")
    tf_ns = timeframe.seconds * NS
    names = list(bars)
    series = [_Series(name, bars[name], strategy, tf_ns) for name in names]
    rank = {s: r for r, s in enumerate(sorted(range(len(names)), key=names.__getitem__))}
    sim = _Account(series, strategy, settings, rank)

    ticks = np.concatenate([s.time[s.buys] + tf_ns for s in series])
    order = np.concatenate([np.full(len(s.buys), k, dtype=np.int64) for k, s in enumerate(series)])
    at_bar = np.concatenate([s.buys for s in series])
    sequence = np.lexsort((order, ticks))
    first = min(int(s.time[0]) for s in series)
    last = max(int(s.time[-1]) for s in series) + tf_ns
    for midnight in range((first // DAY_NS + 1) * DAY_NS, last + 1, DAY_NS):
        heapq.heappush(sim.events, (midnight, _DAY, 0, -1))
    for t, k, i in zip(
        ticks[sequence].tolist(), order[sequence].tolist(), at_bar[sequence].tolist(), strict=True
    ):
        sim.run_until((t, _SIGNAL_EXIT, k, -1))
        sim.buy_signal(t, k, i)
    sim.run_until((_NEVER, _END + 1, 0, 0))
    return sim.result(names)


class _Account:
    """The exchange's books and the service's decisions, event by event."""

    def __init__(
        self, series: list[_Series], strategy: Strategy, settings: PortfolioSettings, rank: dict[int, int]
    ) -> None:
        self.series, self.settings, self.rank = series, settings, rank
        self.limits = settings.limits
        self.label = strategy.label
        self.cash = settings.cash
        self.day_start = settings.cash
        self.held: dict[int, _Open] = {}
        self.by_name: list[tuple[int, int]] = []  # (rank, k) of the held symbols, in name order
        self.events: list[tuple[int, int, int, int]] = []
        self.trades: list[tuple[int, int, int, float, float, float, float, float, int]] = []
        self.cash_moves: list[tuple[int, float]] = []
        self.signals = self.opened = self.rejected = self.ignored = 0
        self.blocked: dict[str, int] = {}

    # --- events ---------------------------------------------------------------------------

    def run_until(self, key: tuple[int, int, int, int]) -> None:
        events = self.events
        while events and events[0] < key:
            t, phase, _, k = heapq.heappop(events)
            if phase == _DAY:
                self.day_start = self.equity_at(t)[0]
            else:
                self.close(k)

    def equity_at(self, t: int) -> tuple[float, list[Position]]:
        """Cash plus every position at the price now (summed in symbol order, as the exchange
        does), and the positions marked at that price (as the service's sync marks them)."""
        value = 0.0
        marked = []
        for _, k in self.by_name:
            held, series = self.held[k], self.series[k]
            mark = series.price_at(t)
            value += held.qty * mark
            marked.append(
                Position(series.name, held.qty, held.price, mark, held.stop, held.target, self.label)
            )
        return self.cash + value, marked

    def buy_signal(self, t: int, k: int, i: int) -> None:
        """``TradingService.on_signal`` for a buy, then ``SimBroker.submit`` for the market order."""
        self.signals += 1
        if k in self.held:
            self.ignored += 1
            return
        s, limits = self.series[k], self.limits
        price = float(s.close[i])  # the signal's price: the close of the bar that signalled
        if self._book_full(price):
            self._block(self._full_book(t))
            return
        stop, target = protective_levels(limits, price)
        if s.stop_hint is not None:
            hint = float(s.stop_hint[i])
            if math.isfinite(hint) and 0 < hint < price:
                stop = hint
        equity, positions = self.equity_at(t)
        # Every entry fills in full when it is placed (the simulator's market orders), so no entry
        # is ever working here: ``working`` is empty, and the cash is all available.
        state = PortfolioState(
            equity=equity,
            cash=self.cash,
            positions=tuple(positions),
            day_start_equity=self.day_start,
            working=(),
        )
        fixed = self.settings.fixed_qty
        if fixed is None:
            qty = position_size(limits, symbol=s.name, equity=equity, cash=self.cash, entry=price, stop=stop)
        else:
            qty = fixed
        decision = check_entry(limits, state, symbol=s.name, qty=qty, entry=price, stop=stop)
        if not decision.approved:
            self._block(decision)
            return
        fill = fill_price(
            s.name, s.raw_price_at(t) * (1.0 + self.settings.slippage)
        )  # the grid, after slippage
        if buy_refusal(qty, fill, self.cash, self.settings.commission) is not None:
            self.rejected += 1
            return
        fee = qty * fill * self.settings.commission
        self.cash -= qty * fill + fee
        self.cash_moves.append((t, -(qty * fill + fee)))
        avg = (0.0 * 0.0 + fill * qty) / qty  # the books' average price, computed as they compute it
        held = _Open(qty, avg, fee, t, stop, target)
        self.held[k] = held
        bisect.insort(self.by_name, (self.rank[k], k))
        self.opened += 1
        heapq.heappush(self.events, self._exit(k, held))

    def _book_full(self, price: float) -> bool:
        return len(self.held) >= self.limits.max_open_trades and math.isfinite(price) and price > 0

    def _full_book(self, t: int) -> Decision:
        """``check_entry``'s answer for a symbol not held while ``max_open_trades`` positions are
        open: it denies before it reads the size, the stop or the positions, at the daily loss
        limit if that is reached, else at max open trades. Most buy signals of a large portfolio
        meet a full book; this answers them without sizing them or marking every position."""
        value = 0.0
        for _, k in self.by_name:  # equity_at's sum, in the same order
            value += self.held[k].qty * self.series[k].price_at(t)
        loss = daily_loss_denial(self.limits, equity=self.cash + value, day_start_equity=self.day_start)
        return loss or max_open_trades_denial(self.limits)

    def _block(self, decision: Decision) -> None:
        kind = next((label for key, label in BLOCK_KINDS if key in decision.reason), decision.reason)
        self.blocked[kind] = self.blocked.get(kind, 0) + 1

    def _exit(self, k: int, held: _Open) -> tuple[int, int, int, int]:
        """How ``held`` ends, and the event key of that moment. The first of: a stop or target on
        a bar starting at or after the entry (the exchange finds it once that bar has closed), the
        next sell signal (filled at the price when its bar closes), the end of the symbol's data
        (closed at its last close)."""
        s, slip = self.series[k], self.settings.slippage
        j = int(np.searchsorted(s.time, held.entry_time, "left"))
        after = int(np.searchsorted(s.sells, j, "left"))
        sell = int(s.sells[after]) if after < len(s.sells) else -1
        hit = _scan(s.bars, j, sell if sell >= 0 else len(s.time) - 1, held.stop, held.target)
        if hit is not None:
            m, price, reason = hit
            held.exit_price = fill_price(
                s.name, price * (1.0 - slip) if reason is ExitReason.STOP_LOSS else price
            )
            held.exit_reason, held.exit_time = reason, int(s.time[m])
            return (held.exit_time + s.tf_ns, _STOP, self.rank[k], k)
        if sell >= 0:
            tick = int(s.time[sell]) + s.tf_ns
            held.exit_price, held.exit_reason, held.exit_time = (
                fill_price(s.name, s.raw_price_at(tick) * (1.0 - slip)),
                ExitReason.SIGNAL,
                tick,
            )
            return (tick, _SIGNAL_EXIT, k, k)
        held.exit_price = float(s.close[-1]) * (1.0 - slip)
        held.exit_time = int(s.time[-1])
        return (held.exit_time + s.tf_ns, _END, k, k)

    def close(self, k: int) -> None:
        """The exchange fills the exit; the service books the round trip."""
        held = self.held.pop(k)
        self.by_name.remove((self.rank[k], k))
        price, qty = held.exit_price, held.qty
        fee = qty * price * self.settings.commission
        self.cash += qty * price - fee
        self.cash_moves.append((held.exit_time, qty * price - fee))
        pnl = (price - held.price) * qty - held.entry_fee * 1.0 - fee  # share closed: 1.0, as the books
        code = _REASON_CODE[held.exit_reason]
        self.trades.append(
            (k, held.entry_time, held.exit_time, held.price, price, qty, pnl, held.entry_fee + fee, code)
        )

    # --- the result -----------------------------------------------------------------------

    def result(self, names: list[str]) -> PortfolioRun:
        series = self.series
        aligned = all(np.array_equal(s.time, series[0].time) for s in series[1:])
        times = series[0].time if aligned else np.unique(np.concatenate([s.time for s in series]))
        columns = list(zip(*self.trades, strict=True)) if self.trades else [()] * 9
        sym, entry_t, exit_t, entry_px, exit_px, qty, pnl, comm, reason = (np.asarray(c) for c in columns)
        entry_t, exit_t = entry_t.astype(np.int64), exit_t.astype(np.int64)
        equity = self.settings.cash + _steps(times, self.cash_moves)
        for k, a_time, b_time, q in zip(
            sym.tolist(), entry_t.tolist(), exit_t.tolist(), qty.tolist(), strict=True
        ):
            a, b = equity_point(times, a_time), equity_point(times, b_time)
            if b > a:
                s = series[k]
                index = np.arange(a, b) if aligned else np.searchsorted(s.time, times[a:b], "right") - 1
                equity[a:b] += q * s.close[index]
        counts = EntryCounts(self.signals, self.opened, dict(self.blocked), self.rejected, self.ignored)

        def f64(column: Any) -> np.ndarray:
            return np.asarray(column, dtype=np.float64)

        return PortfolioRun(
            names, times, equity, sym.astype(np.int64), entry_t, exit_t,
            f64(entry_px), f64(exit_px), f64(qty), f64(pnl), f64(comm),
            reason.astype(np.int64), counts,
        )  # fmt: skip


def _scan(
    bars: Bars, start: int, last: int, stop: float, target: float
) -> tuple[int, float, ExitReason] | None:
    """``first_touch`` over bars ``start..last`` in growing chunks (most trades end within a few dozen bars)."""
    size = 64
    while start <= last:
        end = min(last + 1, start + size)
        hit = first_touch(bars[start:end], stop=stop, target=target)
        if hit is not None:
            return start + hit[0], hit[1], hit[2]
        start, size = end, size * 4
    return None


def equity_point(times: np.ndarray, t: int) -> int:
    """The equity point a fill at ``t`` first shows in: the last bar time at or before it."""
    return max(int(np.searchsorted(times, t, "right")) - 1, 0)


def _steps(times: np.ndarray, moves: list[tuple[int, float]]) -> np.ndarray:
    """The cash change at each point, accumulated: cash after every fill up to that point."""
    delta = np.zeros(len(times))
    if moves:
        at, amount = zip(*moves, strict=True)
        points = np.maximum(np.searchsorted(times, np.asarray(at, dtype=np.int64), "right") - 1, 0)
        np.add.at(delta, points, np.asarray(amount, dtype=np.float64))
    return np.cumsum(delta)
