"""Alpaca broker: the ``Broker`` interface on alpaca-py's ``TradingClient``, a front over parts with one job each.

- ``bot.alpaca.venue``: the REST API as the rest reads and writes it (retried reads, short caches,
  the account's flags, the order memory, one submit that never resends, ``status=all`` reads);
- ``bot.alpaca.desk``: what Alpaca would refuse, said before sending; the alpaca-py request;
- ``bot.alpaca.protection``: every share protected at Alpaca (release, restore, re-protect, the
  invariant checked against what Alpaca has, the crypto guards, the emergency exit);
- ``bot.alpaca.updates`` and ``bot.alpaca.fills``: executions and order statuses since the last sync.

Safety rules this adapter keeps, whatever the SDK does:

- **Never a duplicate order.** Every submit carries ``intent.client_order_id`` and is sent once
  (``bot.alpaca.http`` switches off alpaca-py's own resend); see ``bot.alpaca.venue``.
- **Never an order the account cannot place**: its flags are read (cached) before anything is
  touched; a blocked or suspended account refuses in one line and leaves stops alone.
- **Never a naked position, never a sell into a short** (``bot.alpaca.protection``).
- **Fills** (``bot.alpaca.fills``): each execution once, reported until acknowledged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from alpaca.trading.client import TradingClient

from bot.alpaca.convert import as_float, is_open, qty_key, symbol_of, to_order
from bot.alpaca.desk import OrderDesk
from bot.alpaca.fees import DEFAULT_CRYPTO_FEE_BPS
from bot.alpaca.fills import FillLedger
from bot.alpaca.holdings import Holding
from bot.alpaca.http import AlpacaHttp
from bot.alpaca.protection import Protection
from bot.alpaca.updates import Updates
from bot.alpaca.venue import READS, AccountFlags, AlpacaVenue, LatestPrices, signed_qty
from bot.brokers.base import BrokerError, BrokerUpdate, OrderRejected
from bot.domain import Account, Order, OrderIntent, Position, Side, StopCover
from bot.domain import is_crypto as crypto_symbol
from bot.retry import RetryPolicy
from bot.risk import QtyRules

log = logging.getLogger(__name__)

__all__ = ["AlpacaBroker", "LatestPrices"]


class AlpacaBroker:
    name = "alpaca"

    def __init__(
        self,
        client: TradingClient,
        *,
        paper: bool,
        http: AlpacaHttp | None = None,
        prices: LatestPrices | None = None,
        policy: RetryPolicy = READS,
        clock_ttl: float = 30.0,
        account_ttl: float = 3.0,
        asset_ttl: float = 3600.0,
        fill_lookback: timedelta = timedelta(days=1),
        cancel_wait: float = 5.0,
        emergency_exit: bool = True,
        protection_ttl: float = 5.0,
        crypto_fee_bps: float = DEFAULT_CRYPTO_FEE_BPS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.paper = paper
        self.mode = "paper" if paper else "live"
        ttl = {"clock": clock_ttl, "account": account_ttl, "asset": asset_ttl, "protection": protection_ttl}
        self.venue = AlpacaVenue(
            client, paper=paper, http=http, prices=prices, policy=policy, ttl=ttl, sleep=sleep
        )
        self.desk = OrderDesk(self.venue)
        self.protection = Protection(
            self.venue, cancel_wait=cancel_wait, emergency_exit=emergency_exit, sleep=sleep
        )
        self.fills = FillLedger(fill_lookback, crypto_fee_bps=crypto_fee_bps)  # fees: bot.alpaca.fees
        self.updates = Updates(self.venue, self.fills)

    # ------------------------------------------------------------------ reads
    def check_credentials(self) -> Account:
        self.venue.forget("account")
        return self.account()

    def account(self) -> Account:
        raw = self.venue.raw_account()
        return Account(
            cash=as_float(raw.cash) or 0.0,
            equity=as_float(raw.equity) or 0.0,
            buying_power=as_float(raw.buying_power) or 0.0,
            currency=raw.currency or "USD",
        )

    def flags(self) -> AccountFlags:
        """The account's trading flags (cached briefly): shown at start and by ``tradebot doctor``."""
        return self.venue.flags()

    def positions(self) -> list[Position]:
        """Alpaca's positions (a short negative), with the stop and target its orders carry."""
        rows = self.venue.position_rows()
        holdings = self.protection.holdings() if rows else {}
        guards = {g.symbol: g for g in self.protection.guards.all()}
        out = []
        for row in rows:
            symbol = symbol_of(row)
            holding, guard = holdings.get(symbol) or Holding(symbol), guards.get(symbol)
            out.append(
                Position(
                    symbol=symbol,
                    qty=signed_qty(row),
                    avg_price=as_float(row.avg_entry_price) or 0.0,
                    market_price=as_float(row.current_price),
                    stop_loss=holding.stop_price() or (guard.stop if guard else None),
                    take_profit=holding.target_price() or (guard.target if guard else None),
                    strategy="external",
                )
            )
        return out

    def open_orders(self) -> list[Order]:
        """Every live order, a held stop leg included."""
        after = self.venue.now() - self.protection.horizon
        return [to_order(o) for o in self.venue.orders_since(after) if is_open(o)]

    def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        raw = self.venue.find(client_order_id)
        return None if raw is None else to_order(raw)

    def is_tradable_now(self, symbol: str, now: datetime) -> bool:
        if crypto_symbol(symbol):
            return True
        clock = self.venue.clock()
        return bool(now < clock.next_close) if clock.is_open else bool(now >= clock.next_open)

    def latest_price(self, symbol: str, now: datetime) -> float | None:
        return self.venue.price(symbol)

    def qty_rules(self, symbol: str) -> QtyRules:
        return self.desk.qty_rules(symbol)

    # ------------------------------------------------------------------ orders
    def submit(self, intent: OrderIntent) -> Order:
        what = f"{intent.side.value} {qty_key(intent.qty)} {intent.symbol}"
        sell = intent.side is Side.SELL
        self.venue.forget("protection")
        try:
            refusal = self.venue.flags().refusal
            if refusal:
                stays = "; its stop and target stay at Alpaca" if sell else ""
                raise OrderRejected(f"{what} not sent: {refusal}{stays}")
            request = self.desk.prepare(intent)
            if sell:
                raw, note = self.protection.exit(intent, request, self._send)
            else:
                raw, note = self._send(request), ""
        except OrderRejected:
            # A resend of an order Alpaca already has fails the checks (its own legs look like a
            # wash trade, its fill emptied the position): the order exists, so it was placed.
            existing = self.venue.find(intent.client_order_id)
            if existing is not None:
                return to_order(existing, intent)
            raise
        self.protection.guards.arm(intent, raw)
        log.info(
            "Alpaca has %s %s %s as %s%s",
            intent.side.value,
            qty_key(float(raw.qty or 0)),
            intent.symbol,
            raw.id,
            f"; {note}" if note else "",
        )
        return to_order(raw, intent)

    def _send(self, request: Any) -> Any:
        raw = self.venue.submit_raw(request) or self.venue.find(str(request.client_order_id))
        if raw is None:
            raise BrokerError(
                f"Alpaca says {request.client_order_id} exists but cannot find it", retriable=True
            )
        return raw

    def cancel(self, client_order_id: str) -> Order:
        """Cancel an open order (a bracket's legs go with it, orders.md "Bracket Orders"). Alpaca
        answers 204 and cancels asynchronously (``pending_cancel``): the order is read back until
        it is final, for ``cancel_wait`` seconds at most, and returned as it stands then (still
        ``pending_cancel``: the next sync reports it canceled). 422 "not cancelable": it is final
        already (filled first), returned as it is."""
        raw = self.venue.find(client_order_id)
        self.venue.forget("protection")
        if raw is None:
            raise OrderRejected(f"Alpaca has no order {client_order_id}")
        if is_open(raw):
            self.venue.cancel_raw(raw, client_order_id)
            raw = self.protection.await_final(raw)
        return to_order(raw)

    # ------------------------------------------------------------------ protection
    def ensure_protection(self, positions: list[Position]) -> list[str]:
        """Every cycle and at reconciliation: the invariant checked at Alpaca and repaired
        (``positions``: the books, for the levels Alpaca does not show). What was done or is wrong."""
        self.venue.forget("protection")
        return self.protection.ensure(positions)

    def check_protection(self, positions: list[Position]) -> list[StopCover]:
        """The invariant per position as Alpaca has it, for /status, the web and doctor: read anew
        after any order, cancel or sync, else at most ``protection_ttl`` seconds old (a dashboard
        refreshing every second must not spend Alpaca's 200 requests a minute)."""
        return self.venue.cached("protection", "protection", lambda: self.protection.covers(positions))

    # ------------------------------------------------------------------ sync
    def acknowledge(self, fill_ids: list[str]) -> None:
        """The service has recorded these fills: stop reporting them."""
        self.fills.acknowledge(fill_ids)

    def report_fills_since(self, since: datetime | None) -> None:
        """The books hold every fill up to ``since``: the next sync reads the FILL activities from
        there on, page by page, however long ago (a restart after a week's outage records every
        fill). None: the books hold nothing to resume from; look back ``fill_lookback``."""
        if since is not None:
            self.fills.resume_from(since)

    def push_trade_update(self, update: Any) -> BrokerUpdate:
        """A ``trade_updates`` event (alpaca-py ``TradeUpdate``): its fill joins the ledger under the
        id the activities give the same execution; the next ``sync`` reports it. No I/O: safe to
        call on the event loop while a sync runs in a worker thread."""
        return self.updates.push(update)

    def sync(self, now: datetime) -> BrokerUpdate:
        """A new cycle: new FILL activities join the ledger; every unacknowledged fill, the orders
        whose status or filled quantity changed, then the crypto guards' work."""
        self.venue.http.begin_cycle()
        self.venue.forget("protection")
        self.updates.poll_fills(now)
        orders = self.updates.changed_orders()
        alerts, self.protection.alerts = self.protection.alerts, []
        alerts += self.protection.guards.run()
        return BrokerUpdate(fills=self.fills.pending(), orders=orders, alerts=alerts)
