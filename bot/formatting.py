"""Pure text formatting of the service's answers, shared by the console and Telegram.

Plain text only (no Markdown), so nothing needs escaping and every transport shows it as is.
Times on the simulated market's clock are labelled as such wherever they are shown: after an
accelerated run that clock is ahead of the wall clock, and an unlabelled time would match no
log line and no watch.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime

from bot.domain import Event, EventKind, Order, OutcomeStatus, Position, Severity, Trade, TradingState
from bot.plugins import Registry
from bot.views import LimitOrigin, OrderOutcome, Pause, PnlReport, RiskView, StatusView, TickReport

MODE_TEXT = {
    "sim": "SIMULATED market (no real money)",
    "paper": "Alpaca PAPER account (no real money)",
    "live": "Alpaca LIVE account (REAL MONEY)",
}


def money(value: float) -> str:
    return f"{value:,.2f}"


def signed(value: float) -> str:
    """Money with its sign, and no "-0.00" for a loss that rounds to nothing."""
    text = f"{value:+,.2f}"
    return "+0.00" if text == "-0.00" else text


def qty(value: float) -> str:
    """A quantity as it is: thousands separators, up to 9 decimals (Alpaca's precision), and a
    speck of dust as what it is rather than "0"."""
    if 0 < abs(value) < 1e-9:
        return f"{value:g}"
    return f"{value:,.9f}".rstrip("0").rstrip(".")


SIMULATED_CLOCK = "simulated clock"


def when(moment: datetime | None, *, simulated: bool = False) -> str:
    """A time as UTC, labelled when it is on the simulated market's clock."""
    if moment is None:
        return "never"
    text = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{text} ({SIMULATED_CLOCK})" if simulated else text


def duration(seconds: float) -> str:
    """A span for people: 45 s, 12 min, 3 h 12 min, 2 days 3 h."""
    seconds = int(abs(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} day{'s' if days != 1 else ''}" + (f" {hours} h" if hours else "")
    if hours:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``1 open trade``, ``3 open trades``, with thousands separators."""
    return f"{count:,} {noun if count == 1 else plural_form or noun + 's'}"


STATE_TEXT = {
    TradingState.ACTIVE: "active",
    TradingState.PAUSED: "paused (no new entries; exits still run)",
    TradingState.HALTED: "halted (daily loss limit)",
    TradingState.STANDBY: "standby (another instance trades)",
}


def state(view: StatusView) -> str:
    return STATE_TEXT[view.trading_state]


def welcome(view: StatusView) -> str:
    return (
        "tradebot here. Trading a " + MODE_TEXT.get(view.mode, view.mode) + ".\n"
        f"Symbols: {', '.join(view.symbols)} on {view.timeframe} bars; strategies: {', '.join(view.strategies)}.\n"
        "Send /help for the commands, /status for the state."
    )


def help_text(rows: list[tuple[str, str]]) -> str:
    return "Commands:\n" + "\n".join(f"{usage} - {summary}" for usage, summary in rows)


def paused(pause: Pause, *, simulated: bool = False) -> str:
    """``PAUSED since <time> by <who>: ...``: a pause outlives the run that made it."""
    since = f" since {when(pause.since, simulated=simulated)}" if pause.since else ""
    by = f" by {pause.by}" if pause.by else ""
    held_back = f"; {plural(pause.blocked, 'entry', 'entries')} blocked since" if pause.blocked else ""
    return f"PAUSED{since}{by}: no new entries, exits still run{held_back}"


def _simulated_clock(view: StatusView) -> str:
    parts = [SIMULATED_CLOCK]
    if view.clock_speed != 1:
        parts.append(f"{view.clock_speed:g}x real time")
    if view.real_now is not None and (view.now - view.real_now).total_seconds() >= 60:
        parts.append(f"{duration((view.now - view.real_now).total_seconds())} ahead of real time")
    return ", ".join(parts)


def _state_line(view: StatusView, *, simulated: bool) -> str:
    if view.pause is not None and view.trading_state is not TradingState.STANDBY:
        return f"State: {paused(view.pause, simulated=simulated)}"
    return f"State: {state(view)}"


def status(view: StatusView) -> str:
    simulated = view.mode == "sim"
    lines = [
        f"Mode: {MODE_TEXT.get(view.mode, view.mode)}",
        _state_line(view, simulated=simulated),
        f"Equity: {money(view.equity)}  Cash: {money(view.cash)}",
        f"Open positions: {view.positions}  Open orders: {view.open_orders}",
    ]
    if view.books_behind:
        lines.append(
            f"Books: behind the broker ({view.books_behind}); no new entries until a reconciliation succeeds"
        )
    lines += [
        f"Last cycle: {when(view.last_tick, simulated=simulated)}",
        f"Clock: {when(view.now)}" + (f" ({_simulated_clock(view)})" if simulated else ""),
    ]
    if view.instance:
        lines.append(f"Instance: {view.instance}")
    if view.limits:
        lines.append("Risk limits:")
        lines += [
            f"  {name} {value:g}: {origin(view.limit_origins.get(name), simulated=simulated)}"
            for name, value in view.limits.items()
        ]
    if view.data_problems:
        lines.append("Data problems (not trading these):")
        lines += [f"  {symbol}: {problem}" for symbol, problem in sorted(view.data_problems.items())]
    else:
        lines.append("Data: all symbols healthy" if view.last_tick else "Data: no cycle yet")
    lines += protection(view)
    return "\n".join(lines)


def protection(view: StatusView) -> list[str]:
    """The invariant per position, as the broker has it: a stop for the whole quantity."""
    if view.protection_error:
        return [f"Stops: could not be read at the broker ({view.protection_error})"]
    if not view.protection:
        return []
    lines = ["Stops at the broker:"]
    for cover in view.protection:
        stop = f" at {money(cover.stop)}" if cover.stop is not None else ""
        word = "ok" if cover.ok else cover.state.value.upper()
        lines.append(
            f"  {cover.symbol} {qty(cover.qty)}: {word}{stop}" + (f" ({cover.note})" if cover.note else "")
        )
    return lines


def positions(items: list[Position]) -> str:
    if not items:
        return "No open positions."
    lines = ["Open positions:"]
    for p in items:
        price = p.market_price if p.market_price is not None else p.avg_price
        pct = (price / p.avg_price - 1) * 100 if p.avg_price else 0.0
        protect = ""
        if p.stop_loss is not None or p.take_profit is not None:
            stop = money(p.stop_loss) if p.stop_loss is not None else "-"
            target = money(p.take_profit) if p.take_profit is not None else "-"
            protect = f" stop {stop} target {target}"
        lines.append(
            f"{p.symbol}: {qty(p.qty)} @ {money(p.avg_price)} now {money(price)} "
            f"P&L {signed(p.unrealized_pnl)} ({pct:+.2f}%){protect} [{p.strategy}]"
        )
    return "\n".join(lines)


def orders(items: list[Order], open_only: bool = True, *, simulated: bool = False) -> str:
    """Orders with the time each was placed; a working one with the id /cancel takes."""
    if not items:
        return "No open orders." if open_only else "No orders yet."
    heading = "Open orders" if open_only else "Recent orders"
    lines = [heading + (f" (placed, {SIMULATED_CLOCK}, UTC):" if simulated else " (placed, UTC):")]
    for o in items:
        filled = f" @ {money(o.filled_avg_price)}" if o.filled_avg_price else ""
        if o.filled_avg_price and o.status.value != "filled":
            filled = f" ({qty(o.filled_qty)} filled @ {money(o.filled_avg_price)})"
        ident = f" id {o.client_order_id}" if o.status.is_open else ""
        placed = f"{o.created_at:%m-%d %H:%M:%S} " if o.created_at is not None else ""
        lines.append(
            f"{placed}{o.side.value} {qty(o.qty)} {o.symbol} {o.status.value}{filled} [{o.strategy}]{ident}"
        )
    if any(o.status.is_open for o in items):
        lines.append("/cancel ID cancels what is left of a working order (it asks first).")
    return "\n".join(lines)


def trades(items: list[Trade], *, simulated: bool = False) -> str:
    if not items:
        return "No closed trades yet."
    heading = "Last trade" if len(items) == 1 else f"Last {len(items):,} trades"
    lines = [heading + (f" (times on the {SIMULATED_CLOCK}, UTC):" if simulated else " (times UTC):")]
    for t in items:
        lines.append(
            f"{t.exit_time:%m-%d %H:%M} {t.symbol} {qty(t.qty)}: {money(t.entry_price)} -> {money(t.exit_price)} "
            f"P&L {signed(t.pnl)} ({t.exit_reason}) [{t.strategy}]"
        )
    return "\n".join(lines)


def pnl(report: PnlReport) -> str:
    lines = [
        f"Today: {signed(report.today_pnl)} (realized {signed(report.today_realized)})",
        f"Total realized: {signed(report.total_realized)}  Unrealized: {signed(report.unrealized)}",
        f"Equity: {money(report.equity)}  Return: {report.return_pct:+.2f}%",
    ]
    if report.sharpe is None or report.sortino is None:
        lines += [
            f"Max drawdown: {report.max_drawdown_pct:.2f}%",
            f"Sharpe, Sortino: not yet: they need a day and 30 equity snapshots (so far {report.history})",
        ]
    else:
        lines.append(
            f"Sharpe: {report.sharpe:.2f}  Sortino: {report.sortino:.2f}  Max drawdown: {report.max_drawdown_pct:.2f}%"
        )
    lines.append(
        f"Trades: {report.trades:,}  Win rate: {report.win_rate:.1f}%"
        if report.trades
        else "Trades: none closed yet"
    )
    if report.per_strategy:
        lines.append("By strategy:")
        lines += [
            f"  {s.strategy}: {plural(s.trades, 'trade')}, P&L {signed(s.pnl)}, win rate {s.win_rate:.1f}%"
            for s in report.per_strategy
        ]
    return "\n".join(lines)


def origin(source: LimitOrigin | None, *, simulated: bool = False) -> str:
    """Where a limit in force came from: ``default``, ``.env``, ``environment``, or
    ``set by ann at ... (configured 2 from the environment)``."""
    if source is None:
        return "default"
    configured = {"default": "default", ".env": "from .env", "environment": "from the environment"}
    where = configured.get(source.source, source.source)
    if not source.overridden:
        return where if source.source == "default" else source.source
    at = f" at {when(source.at, simulated=simulated)}" if source.at else ""
    return f"set by {source.by}{at} (configured {source.configured:g}, {where})"


def risk(view: RiskView, *, simulated: bool = False) -> str:
    lines = ["Risk limits (name: value (allowed range) where it comes from):"]
    for name, value in view.limits.items():
        low, high = view.bounds[name]
        lines.append(
            f"  {name}: {value:g} ({low:g}..{high:g}) {origin(view.origins.get(name), simulated=simulated)}"
        )
    lines += [
        f"Now: {plural(view.open_trades, 'open trade')}, portfolio risk {view.portfolio_risk_pct:.2f}% of equity, "
        f"today {-view.day_loss_pct:+.2f}%",
        "Trading is paused." if view.paused else "Trading is active.",
        "Change one with /risk set NAME VALUE; back to the configured value with /risk reset NAME|all",
    ]
    return "\n".join(lines)


def strategies(registry: Registry, running: tuple[str, ...]) -> str:
    lines = ["Running: " + (", ".join(running) if running else "none"), "Installed:"]
    for name, cls in sorted(registry.strategies.items()):
        params = ", ".join(f"{k}={p.default:g}" for k, p in cls.params.items())
        lines.append(f"  {name}({params}) - {cls.description}".rstrip(" -"))
    if registry.errors:
        lines.append("Failed to load:")
        lines += [f"  {e}" for e in registry.errors]
    return "\n".join(lines)


def cycle(report: TickReport) -> str:
    """What one cycle did with its signals, each kind counted apart: "3 signals: 1 order placed,
    2 entries blocked, 0 signals ignored" (an ignored signal is not an order)."""
    counts = Counter(str(o.status) for o in report.orders)
    if not report.signals:
        return "no signals"
    parts = [
        plural(counts["placed"] + counts["filled"] + counts["books_behind"], "order") + " placed",
        plural(counts["blocked"], "entry", "entries") + " blocked",
        plural(counts["ignored"], "signal") + " ignored",
    ]
    labels = (
        ("books_behind", "not yet in the books"),
        ("duplicate", "already placed"),
        ("rejected", "rejected"),
        ("failed", "failed"),
    )
    for status, label in labels:
        if counts[status]:
            parts.append(f"{plural(counts[status], 'order')} {label}")
    unanswered = report.signals - len(report.orders)
    if unanswered:
        parts.append(f"{plural(unanswered, 'signal')} not processed (an error, alerted)")
    return f"{plural(report.signals, 'signal')}: {', '.join(parts)}"


def outcome(result: OrderOutcome) -> str:
    return f"{OUTCOME_TEXT[result.status]}: {result.message}"


OUTCOME_TEXT = {
    OutcomeStatus.FILLED: "Done",
    OutcomeStatus.PLACED: "Placed",
    OutcomeStatus.BOOKS_BEHIND: "Placed at the broker; books behind, will reconcile",
    OutcomeStatus.BLOCKED: "Blocked",
    OutcomeStatus.DUPLICATE: "Already done",
    OutcomeStatus.REJECTED: "Rejected by the broker",
    OutcomeStatus.FAILED: "Failed",
    OutcomeStatus.IGNORED: "Ignored",
    OutcomeStatus.CANCELED: "Canceled",
}


def alert(event: Event) -> str:
    marker = {Severity.INFO: "", Severity.WARNING: "[!] ", Severity.ERROR: "[ERROR] "}[event.severity]
    return f"{marker}{event.message}"


def console_alert(event: Event) -> str:
    """An alert as a line of the console a trader reads all day: its time first (UTC, on the
    clock that recorded it: the simulated one in the simulator), and the order id when /cancel
    could use it."""
    ident = ""
    order_id = event.data.get("client_order_id")
    if event.kind is EventKind.ORDER_PLACED and order_id:
        ident = f" id {order_id}"
    return f"{event.time:%H:%M:%S} ALERT {alert(event)}{ident}"


def daily_summary(day: date, status_view: StatusView, report: PnlReport) -> str:
    lines = [
        f"Daily summary {day.isoformat()} ({MODE_TEXT.get(status_view.mode, status_view.mode)})",
        f"State: {state(status_view)}; {status_view.positions} open positions, "
        f"{status_view.open_orders} open orders",
        pnl(report),
    ]
    if status_view.mode == "sim":  # "today" is the simulated market's day, not the wall clock's
        lines.insert(1, f"Clock: {when(status_view.now)} ({_simulated_clock(status_view)})")
    if status_view.data_problems:
        lines.append(f"Data problems: {', '.join(sorted(status_view.data_problems))}")
    return "\n".join(lines)
