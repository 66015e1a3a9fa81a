"""Charts as PNG bytes: /chart (price, the strategies' lines, entries and exits) and /equity.

Three layers, each usable alone:

* ``ChartData`` reads what a chart shows (bars from the engine's history cache or the bar
  source, the strategies' ``compute`` lines, trades, the equity curve). No drawing here.
* ``draw_price`` / ``draw_equity`` draw onto matplotlib axes (the backtest plot can share them).
* ``render_price`` / ``render_equity`` make a PNG.

matplotlib is imported lazily and only through its object-oriented API (``Figure`` with the
Agg canvas), never ``pyplot``: charts are drawn in worker threads, and pyplot's global state
is not thread-safe.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.bars import NS, Bars, Timeframe
from bot.commands import Caller, Command, Reply, UsageError
from bot.formatting import SIMULATED_CLOCK
from bot.metrics import drawdown_pct

if TYPE_CHECKING:
    from bot.app import App
    from bot.clock import Clock
    from bot.data.base import BarSource
    from bot.data.cache import HistoryCache
    from bot.service import TradingService
    from bot.strategy import Strategy

log = logging.getLogger(__name__)

BARS_SHOWN = 120
CANDLES_UP_TO = 400  # more bars than this are drawn as a close line
MAX_POINTS = 5_000  # long equity curves are thinned to about this many points
GREEN, RED, BLUE, GREY = "#1f9d55", "#d73a49", "#1f6feb", "#333333"


class ChartError(Exception):
    """Nothing to draw; the message says why, for the chat."""


@dataclass(frozen=True, slots=True)
class Marker:
    time_ns: int
    price: float
    entry: bool  # True: an entry (buy); False: an exit (sell)
    won: bool | None = None  # exits: whether the round trip made money


@dataclass(frozen=True, slots=True)
class PriceChart:
    symbol: str
    timeframe: Timeframe
    bars: Bars
    lines: dict[str, np.ndarray]  # label -> one value per bar (NaN where undefined)
    markers: tuple[Marker, ...]
    simulated: bool = False  # the bars are on the simulated market's clock

    @property
    def title(self) -> str:
        return f"{self.symbol} {self.timeframe}{_clock_label(self.simulated)}"

    @property
    def caption(self) -> str:
        close = float(self.bars.close[-1])
        last = datetime.fromtimestamp(int(self.bars.time[-1]) / NS, tz=UTC)
        parts = [
            f"{self.symbol} {self.timeframe}: {len(self.bars)} bars to {last:%Y-%m-%d %H:%M} UTC"
            f"{_clock_label(self.simulated)}, close {close:,.2f}"
        ]
        for label, line in self.lines.items():
            value = float(line[-1])
            if np.isfinite(value):
                trend = "price above" if close >= value else "price below"
                parts.append(f"{label} {value:,.2f} ({trend})")
        entries = sum(m.entry for m in self.markers)
        parts.append(f"{entries} entries, {len(self.markers) - entries} exits shown")
        return "\n".join(parts)


@dataclass(frozen=True, slots=True)
class EquityChart:
    times: np.ndarray  # datetime64[ns]
    equity: np.ndarray
    simulated: bool = False  # the times are on the simulated market's clock

    @property
    def title(self) -> str:
        return f"Equity and drawdown{_clock_label(self.simulated)}"

    @property
    def caption(self) -> str:
        dd = drawdown_pct(self.equity)
        start, end = float(self.equity[0]), float(self.equity[-1])
        change = (end / start - 1) * 100 if start else 0.0
        return (
            f"Equity {end:,.2f} ({change:+.2f}% since {_day(self.times[0])}{_clock_label(self.simulated)}), "
            f"max drawdown {float(dd.max()):.2f}%, now {float(dd[-1]):.2f}% below the peak"
        )


class ChartData:
    """Reads the data behind the charts. Synchronous: call it from a worker thread."""

    def __init__(
        self,
        service: TradingService,
        cache: HistoryCache,
        source: BarSource,
        strategies: list[Strategy],
        clock: Clock,
        bars_shown: int = BARS_SHOWN,
        *,
        simulated: bool = False,
    ) -> None:
        """``simulated``: the simulated market, whose clock the charts' times are on (labelled so)."""
        self.simulated = simulated
        self.service = service
        self.cache = cache
        self.source = source
        self.strategies = strategies
        self.clock = clock
        self.bars_shown = bars_shown

    @classmethod
    def from_app(cls, app: App) -> ChartData:
        return cls(
            app.service, app.engine.cache, app.source, app.strategies, app.clock, simulated=app.mode == "sim"
        )

    def price(self, symbol: str, timeframe: Timeframe | None = None) -> PriceChart:
        timeframe = timeframe or self.cache.timeframe
        warmup = max((s.warmup for s in self.strategies), default=0)
        wanted = self.bars_shown + warmup + 1
        bars = self.cache.get(symbol) if timeframe == self.cache.timeframe else None
        if bars is None or len(bars) < min(wanted, self.cache.max_bars):
            bars = self._fetch(symbol, timeframe, wanted)
        lines: dict[str, np.ndarray] = {}
        for strategy in self.strategies:
            try:
                output = strategy.compute(bars)
            except Exception:
                log.exception("strategy %s failed while drawing %s", strategy.label, symbol)
                continue
            for name, line in output.lines.items():
                label = strategy.label if name == strategy.name else f"{strategy.label} {name}"
                lines[label] = np.asarray(line, dtype=np.float64)[-self.bars_shown :]
        shown = bars.tail(self.bars_shown)
        return PriceChart(
            symbol, timeframe, shown, lines, self._markers(symbol, shown, timeframe), simulated=self.simulated
        )

    def _fetch(self, symbol: str, timeframe: Timeframe, count: int) -> Bars:
        from datetime import timedelta

        from bot.data.base import DataError

        end = timeframe.floor(self.clock.now())
        start = end - timedelta(seconds=timeframe.seconds * count)
        try:
            bars = self.source.fetch([symbol], timeframe, start, end).get(symbol)
        except DataError as exc:
            raise ChartError(f"No {timeframe} bars for {symbol}: {exc}") from None
        if bars is None or len(bars) == 0:
            raise ChartError(f"No {timeframe} bars for {symbol} from {self.source.name}.")
        return bars

    def _markers(self, symbol: str, bars: Bars, timeframe: Timeframe) -> tuple[Marker, ...]:
        first, last = int(bars.time[0]), int(bars.time[-1]) + timeframe.seconds * NS

        def inside(when: datetime | None) -> int | None:
            if when is None:
                return None
            ns = int(when.timestamp() * NS)
            return ns if first <= ns < last else None

        markers = []
        # This symbol's trades that exited since the first bar shown (an index range, whatever
        # the history holds): every entry and exit inside the chart is among them.
        since = datetime.fromtimestamp(first / NS, tz=UTC)
        for trade in self.service.trade_page(limit=1000, symbol=symbol, since=since).items:
            if (ns := inside(trade.entry_time)) is not None:
                markers.append(Marker(ns, trade.entry_price, entry=True))
            if (ns := inside(trade.exit_time)) is not None:
                markers.append(Marker(ns, trade.exit_price, entry=False, won=trade.pnl > 0))
        for position in self.service.positions():
            if position.symbol == symbol and (ns := inside(position.opened_at)) is not None:
                markers.append(Marker(ns, position.avg_price, entry=True))
        return tuple(markers)

    def equity(self) -> EquityChart:
        curve = self.service.equity_curve()
        if len(curve) < 2:
            raise ChartError(
                "Not enough equity history yet: a snapshot is taken every 5 minutes and after each fill."
            )
        times = np.array([np.datetime64(t.replace(tzinfo=None), "ns") for t, _ in curve])
        return EquityChart(times, np.array([e for _, e in curve], dtype=np.float64), simulated=self.simulated)


# ---------------------------------------------------------------------- drawing


def _clock_label(simulated: bool) -> str:
    return f" ({SIMULATED_CLOCK})" if simulated else ""


def _day(moment: np.datetime64) -> str:
    return str(moment.astype("datetime64[D]"))


def draw_price(
    ax: Any,
    bars: Bars,
    lines: dict[str, np.ndarray],
    markers: tuple[Marker, ...] | list[Marker] = (),
    body_width: float | None = None,
) -> None:
    """Candles (or a close line for long series), each line green where price is above it and
    red where below (a Supertrend band reads as support/resistance), entries and exits.

    ``body_width``: candle body width in points (default: from the axes' width and bar count)."""
    times = np.asarray(bars.time, dtype="datetime64[ns]")
    if len(bars) <= CANDLES_UP_TO:
        colors = np.where(bars.close >= bars.open, GREEN, RED)
        ax.vlines(times, bars.low, bars.high, colors=colors, linewidth=0.7)
        # Bodies as thick vertical lines (one collection: far faster than a bar per candle).
        width_points = body_width or max(
            1.0, 0.6 * ax.get_window_extent().width / max(len(bars), 1) * 72 / 100
        )
        top = np.maximum(bars.open, bars.close)
        bottom = np.minimum(bars.open, bars.close)
        flat = top - bottom < 1e-9 * np.abs(bars.close)
        top = np.where(flat, top + 1e-6 * np.abs(bars.close), top)
        ax.vlines(times, bottom, top, colors=colors, linewidth=width_points)
    else:
        ax.plot(times, bars.close, color=GREY, linewidth=0.8, label="close")
    for label, line in lines.items():
        above = bars.close >= line
        ax.plot(times, np.where(above, line, np.nan), color=GREEN, linewidth=1.2, label=label)
        ax.plot(times, np.where(~above, line, np.nan), color=RED, linewidth=1.2)
    groups = (
        ("^", GREEN, "entry", [m for m in markers if m.entry]),
        ("v", BLUE, "exit (win)", [m for m in markers if not m.entry and m.won]),
        ("v", RED, "exit (loss)", [m for m in markers if not m.entry and not m.won]),
    )
    for shape, color, label, group in groups:
        if group:
            ax.scatter(
                [np.datetime64(m.time_ns, "ns") for m in group],
                [m.price for m in group],
                marker=shape,
                color=color,
                edgecolors="black",
                s=60,
                zorder=3,
                label=label,
            )
    ax.set_ylabel("price")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize=7)


def draw_equity(ax_equity: Any, ax_drawdown: Any, times: np.ndarray, equity: np.ndarray) -> None:
    """The equity curve on one axis, the drawdown (percent below the running peak) on another."""
    step = max(1, len(equity) // MAX_POINTS)
    times, equity = times[::step], equity[::step]
    ax_equity.plot(times, equity, color=BLUE, linewidth=1.0)
    ax_equity.set_ylabel("equity")
    ax_equity.grid(alpha=0.3)
    dd = -drawdown_pct(equity)
    ax_drawdown.fill_between(times, dd, 0, color=RED, alpha=0.3, linewidth=0)
    ax_drawdown.plot(times, dd, color=RED, linewidth=0.8)
    ax_drawdown.set_ylabel("drawdown %")
    ax_drawdown.set_ylim(min(float(dd.min()) * 1.1, -1.0), 0.2)
    ax_drawdown.grid(alpha=0.3)


def render_price(chart: PriceChart) -> bytes:
    fig = _figure(9, 5)
    ax = fig.add_subplot()
    draw_price(ax, chart.bars, chart.lines, chart.markers)
    ax.set_title(chart.title, fontsize=10)
    _date_axis(ax)
    return _png(fig)


def render_equity(chart: EquityChart, title: str | None = None) -> bytes:
    """``title``: instead of the chart's own (a backtest names its run)."""
    fig = _figure(9, 5)
    ax_equity, ax_drawdown = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    draw_equity(ax_equity, ax_drawdown, chart.times, chart.equity)
    ax_equity.set_title(title or chart.title, fontsize=10)
    _date_axis(ax_drawdown)
    return _png(fig)


def render_backtest(
    bars: Bars,
    lines: dict[str, np.ndarray],
    markers: list[Marker],
    equity: np.ndarray,
    title: str,
) -> bytes:
    """Price with the strategy's lines and the trades above, equity and drawdown below (one PNG).

    ``equity`` has one value per bar of ``bars``. Long series are thinned to about ``MAX_POINTS``
    points for drawing; every trade keeps its marker.
    """
    step = max(1, len(bars) // MAX_POINTS)
    shown = bars[::step]
    fig = _figure(13, 9)
    ax_price, ax_equity, ax_drawdown = fig.subplots(
        3, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2, 1]}
    )
    draw_price(ax_price, shown, {k: v[::step] for k, v in lines.items()}, markers)
    ax_price.set_title(title, fontsize=10)
    draw_equity(ax_equity, ax_drawdown, np.asarray(bars.time, dtype="datetime64[ns]"), equity)
    _date_axis(ax_drawdown)
    return _png(fig)


def warm_up() -> None:
    """Import matplotlib and draw a tiny chart once (about a second), so the first /chart is quick.

    The Telegram front end calls it in a worker thread once connected; nothing imports
    matplotlib at start-up.
    """
    fig = _figure(1, 1)
    fig.add_subplot().plot([0, 1], [0, 1])
    _png(fig)


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _date_axis(ax: Any) -> None:
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def _png(fig: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


# ---------------------------------------------------------------------- commands


def chart_commands(data: ChartData) -> list[Command]:
    """/chart and /equity, for ``CommandRouter.add``."""

    def chart(args: list[str], caller: Caller) -> Reply:
        if not 1 <= len(args) <= 2:
            raise UsageError("Example: /chart BTC/USD  or  /chart AAPL 15m")
        timeframe = None
        if len(args) == 2:
            try:
                timeframe = Timeframe.parse(args[1])
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        try:
            price = data.price(args[0].upper(), timeframe)
        except ChartError as exc:
            return Reply(str(exc))
        return Reply(price.caption, photo=render_price(price))

    def equity(args: list[str], caller: Caller) -> Reply:
        if args:
            raise UsageError()
        try:
            curve = data.equity()
        except ChartError as exc:
            return Reply(str(exc))
        return Reply(curve.caption, photo=render_equity(curve))

    return [
        Command(
            "chart", "Price chart with strategy lines, entries and exits", "/chart SYMBOL [timeframe]", chart
        ),
        Command("equity", "Equity curve and drawdown", "/equity", equity),
    ]
