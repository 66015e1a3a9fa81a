"""What changed at Alpaca since the last sync: executions and order statuses.

- **Executions** (``poll_fills``): the FILL account activities after the ledger's window start,
  oldest first, page by page (``page_token``: the id of the page's last row). An activity of an
  order never seen before (a bracket leg, a stop's replacement, an order placed by hand) is read
  once by id, so its fill carries the right client id and exit reason. The trading stream's
  events join the same ledger (``push``).
- **Order statuses** (``changed_orders``): the open orders, and every order last seen open that
  is no longer listed (read by id: canceled, filled, expired), each reported once per change of
  status or filled quantity. A ``held`` stop leg is never listed as open: it is reported when it
  changes, through its id.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from bot.alpaca import convert
from bot.alpaca.convert import is_open, to_order
from bot.alpaca.fills import FillLedger
from bot.alpaca.venue import AlpacaVenue
from bot.brokers.base import BrokerError, BrokerUpdate
from bot.domain import Fill, Order, OrderStatus

log = logging.getLogger(__name__)


class Updates:
    def __init__(self, venue: AlpacaVenue, fills: FillLedger) -> None:
        self.venue = venue
        self.fills = fills
        self._reported: dict[str, tuple[OrderStatus, float]] = {}

    def push(self, update: Any) -> BrokerUpdate:
        """A ``trade_updates`` event: its fill joins the ledger (no I/O)."""
        venue = self.venue
        venue.remember(update.order)
        with venue.state:
            coid, symbol, reason = venue.info[str(update.order.id)]
        fill = self.fills.add_stream(update, client_order_id=coid, symbol=symbol, exit_reason=reason)
        return BrokerUpdate(fills=[fill] if fill else [], orders=[to_order(update.order)])

    def poll_fills(self, now: datetime) -> None:
        params: dict[str, Any] = {"after": self.fills.window_start(now), "direction": "asc", "page_size": 100}
        client = self.venue.client
        while True:
            page = (
                self.venue.read(
                    "fill activities", lambda: client.get("/account/activities/FILL", dict(params))
                )
                or []
            )
            for row in page:
                if row.get("order_id"):
                    self.fills.add_activity(row, self._activity_fill(row))
            if len(page) < params["page_size"]:
                return
            params["page_token"] = page[-1]["id"]

    def _activity_fill(self, row: dict[str, Any]) -> Fill:
        order_id = str(row["order_id"])
        if order_id not in self.venue.info:
            raw = self.venue.order(order_id)
            if raw.replaces is not None and str(raw.replaces) not in self.venue.info:
                self.venue.order(str(raw.replaces))  # a stop's replacement exits as the stop did
                self.venue.remember(raw)
        coid, symbol, reason = self.venue.info[order_id]
        return convert.activity_fill(row, coid, symbol, reason)

    def changed_orders(self) -> list[Order]:
        venue = self.venue
        current = {str(o.id): o for o in venue.working()}
        with venue.state:
            gone = venue.tracked_open - current.keys()
        for order_id in gone:
            try:
                current[order_id] = venue.order(order_id)
            except BrokerError as exc:
                log.warning("cannot read order %s: %s", order_id, exc)
        with venue.state:
            venue.tracked_open = {i for i, o in current.items() if is_open(o)} | (venue.tracked_open - gone)
        changed = []
        for order_id, raw in current.items():
            order = to_order(raw)
            state = (order.status, order.filled_qty)
            if self._reported.get(order_id) != state:
                self._reported[order_id] = state
                changed.append(order)
        return changed
