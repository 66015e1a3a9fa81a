"""The fill ledger: every execution once, under one id, reported until the service acknowledges it.

Two roads bring an execution: Alpaca's FILL account activities (polled on every sync; each row
is one execution with its own ``qty``, ``price`` and the order's ``cum_qty``) and the trading
stream's ``fill``/``partial_fill`` events. Both map to ``fill_id(order_id, cum_qty)``.

A stream event is trusted only when it can be placed exactly: its order's ``filled_qty`` (the
cumulative quantity after the event) must equal what the ledger already knows of that order
plus the event's ``qty``, with no execution missing before it. The execution's price is then
worked out from the order's average price, so it is right whether the event's ``price`` is the
execution's (as the trading stream carries it) or the order's average (as the streaming page
of alpaca-docs describes it). An event that cannot be placed is left to the activities, which
always bring it: a stream that skipped an execution can never make one fill count twice.

Fills stay in ``pending()`` until ``acknowledge`` names them (the ``Broker`` contract): a
database error while the service records a fill loses nothing.

Each crypto fill carries Alpaca's fee (``bot.alpaca.fees``), whichever road brought it.

The ledger is thread-safe: the trading stream adds to it on the event loop while a sync reads it
in a worker thread. Every method holds one lock for a few dictionary operations, no I/O.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.alpaca.convert import as_float, fill_id
from bot.alpaca.fees import DEFAULT_CRYPTO_FEE_BPS, with_crypto_fee
from bot.domain import ExitReason, Fill, Side

log = logging.getLogger(__name__)

SEEN_LIMIT = 20_000
EPS = 1e-9


@dataclass
class _OrderFills:
    executions: dict[float, tuple[float, float]] = field(default_factory=dict)  # cum -> (qty, price)

    def known_through(self) -> float:
        """The cumulative quantity up to which every execution is known (0 if none)."""
        cum = 0.0
        for end in sorted(self.executions):
            qty, _ = self.executions[end]
            if abs(end - qty - cum) > EPS:
                break
            cum = end
        return cum

    def notional_through(self, cum: float) -> float:
        return sum(q * p for end, (q, p) in self.executions.items() if end <= cum + EPS)


class FillLedger:
    def __init__(
        self, lookback: timedelta = timedelta(days=1), *, crypto_fee_bps: float = DEFAULT_CRYPTO_FEE_BPS
    ) -> None:
        self.lookback = lookback
        self.crypto_fee_bps = crypto_fee_bps
        self.cursor: datetime | None = None
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()
        self._pending: dict[str, Fill] = {}
        self._cum: dict[str, float] = {}  # fill id -> the order's cumulative quantity after it
        self._orders: dict[str, _OrderFills] = {}
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ reporting
    def pending(self) -> list[Fill]:
        """Unacknowledged fills, oldest first; at one instant, buys before sells and each order's
        executions in cumulative order (same-millisecond activities arrive in either order)."""
        with self._lock:
            return sorted(
                self._pending.values(),
                key=lambda f: (f.time, f.side is not Side.BUY, f.client_order_id, self._cum[f.fill_id]),
            )

    def acknowledge(self, fill_ids: list[str]) -> None:
        with self._lock:
            for fid in fill_ids:
                self._pending.pop(fid, None)
                self._cum.pop(fid, None)

    def _record(self, order_id: str, cum: float, fill: Fill) -> bool:
        self._orders.setdefault(order_id, _OrderFills()).executions.setdefault(cum, (fill.qty, fill.price))
        if fill.fill_id in self._seen:
            return False
        fill = with_crypto_fee(fill, self.crypto_fee_bps)
        self._seen.add(fill.fill_id)
        self._seen_order.append(fill.fill_id)
        while len(self._seen_order) > SEEN_LIMIT:
            self._seen.discard(self._seen_order.popleft())
        self._pending[fill.fill_id] = fill
        self._cum[fill.fill_id] = cum
        return True

    # ------------------------------------------------------------------ activities
    def resume_from(self, since: datetime) -> None:
        """Read the activities from ``since`` on (the last fill the books hold, or their oldest
        open order), however long ago: a restart after a long outage records every fill."""
        with self._lock:
            self.cursor = since if self.cursor is None else min(self.cursor, since)

    def window_start(self, now: datetime) -> str:
        """The ``after`` of the next activities query: activities can be posted a little after
        their transaction time, so look back a minute before the newest seen. With nothing to
        resume from, the first query looks back ``lookback``."""
        with self._lock:
            if self.cursor is None:
                self.cursor = now - self.lookback
            start = self.cursor - timedelta(minutes=1)
        return start.astimezone(UTC).isoformat().replace("+00:00", "Z")

    def add_activity(self, row: dict[str, Any], fill: Fill) -> bool:
        with self._lock:
            self.cursor = max(self.cursor or fill.time, fill.time)
            return self._record(str(row["order_id"]), float(row["cum_qty"]), fill)

    # ------------------------------------------------------------------ trading stream
    def add_stream(
        self, update: Any, *, client_order_id: str, symbol: str, exit_reason: ExitReason | None
    ) -> Fill | None:
        """A ``fill``/``partial_fill`` trade update as a ``Fill``, or None when it cannot be placed
        exactly (the activities will bring it)."""
        with self._lock:
            event = str(getattr(update.event, "value", update.event))
            order = update.order
            if event not in ("fill", "partial_fill"):
                return None
            cum_after = as_float(order.filled_qty) or 0.0
            avg_after = as_float(order.filled_avg_price)
            qty = as_float(getattr(update, "qty", None)) or 0.0
            order_id = str(order.id)
            known = self._orders.setdefault(order_id, _OrderFills())
            if cum_after in known.executions:  # seen already, by either road
                fid = fill_id(order_id, cum_after)
                return self._pending.get(fid)
            before = known.known_through()
            if cum_after <= 0 or avg_after is None or qty <= 0 or abs(before + qty - cum_after) > EPS:
                log.info(
                    "trade update for order %s (filled %s) cannot be placed after %s known: left to the activities",
                    order_id,
                    cum_after,
                    before,
                )
                return None
            price = (avg_after * cum_after - known.notional_through(before)) / qty
            fill = Fill(
                fill_id=fill_id(order_id, cum_after),
                client_order_id=client_order_id,
                symbol=symbol,
                side=Side.BUY if str(getattr(order.side, "value", order.side)) == "buy" else Side.SELL,
                qty=qty,
                price=round(price, 9),
                time=update.timestamp,
                exit_reason=exit_reason,
            )
            self._record(order_id, cum_after, fill)
            return self._pending.get(fill.fill_id, fill)
