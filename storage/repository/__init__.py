"""Rows <-> domain types. Every function takes the session explicitly; none commits.

One module per kind of record; callers import this package (``from storage import repository
as repo``) and call ``repo.save_order(...)``, whichever module a function lives in:

- ``settings``: small JSON values by key (pause, risk overrides, alert groups, clock);
- ``orders``: orders and their fills;
- ``positions``: open positions and closed trades;
- ``equity``: equity snapshots;
- ``signals``: strategy signals and their outcomes;
- ``events``: the audit log and alert outbox;
- ``cursors``: how far each persistent feed consumer has read;
- ``totals``: running totals of trades and the equity curve, for /pnl (checked at start);
- ``_times``: aware UTC in and out.
"""

from __future__ import annotations

from storage.repository._times import aware, utc
from storage.repository.cursors import advance_cursor, get_cursor, list_cursors
from storage.repository.equity import (
    add_equity_snapshot,
    equity_curve,
    first_equity_since,
    last_equity_before,
    newest_equity,
)
from storage.repository.events import add_event, count_events, events_after, latest_event_id, recent_events
from storage.repository.orders import (
    add_fill,
    count_fills,
    fills_resume_point,
    get_order,
    has_fill,
    list_orders,
    order_page,
    save_order,
)
from storage.repository.positions import (
    UnknownCursor,
    add_trade,
    delete_position,
    get_position,
    list_positions,
    list_trades,
    mark_prices,
    position_commission,
    save_position,
    trade_page,
)
from storage.repository.settings import get_setting, insert_setting, set_setting
from storage.repository.signals import add_signal, recent_signals
from storage.repository.totals import (
    EquityDay,
    EquityStats,
    StrategyTotals,
    TradeDay,
    equity_days,
    equity_stats,
    last_equity_day_before,
    realized_since,
    recent_snapshot_times,
    strategy_totals,
    trade_days,
)
from storage.repository.totals import verify as verify_totals

__all__ = [
    "EquityDay",
    "EquityStats",
    "StrategyTotals",
    "TradeDay",
    "UnknownCursor",
    "add_equity_snapshot",
    "add_event",
    "add_fill",
    "add_signal",
    "add_trade",
    "advance_cursor",
    "aware",
    "count_events",
    "count_fills",
    "delete_position",
    "equity_curve",
    "equity_days",
    "equity_stats",
    "events_after",
    "fills_resume_point",
    "first_equity_since",
    "get_cursor",
    "get_order",
    "get_position",
    "get_setting",
    "has_fill",
    "insert_setting",
    "last_equity_before",
    "last_equity_day_before",
    "latest_event_id",
    "list_cursors",
    "list_orders",
    "list_positions",
    "list_trades",
    "mark_prices",
    "newest_equity",
    "order_page",
    "position_commission",
    "realized_since",
    "recent_events",
    "recent_signals",
    "recent_snapshot_times",
    "save_order",
    "save_position",
    "set_setting",
    "strategy_totals",
    "trade_days",
    "trade_page",
    "utc",
    "verify_totals",
]
