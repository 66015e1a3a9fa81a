"""The simulated exchange: the embedded default, behind the same interface Alpaca implements.

Fill model (stated here and in the README):
- a market order fills in full at the next price: the synthetic market's price at the moment
  the order arrives (the market is a pure function of time, so that price is deterministic);
- every stock fill is on the tick grid, a cent at $1 and above (``bot.brokers.rules.fill_price``:
  the market's price rounded to the nearest tick), so a trade's P&L can be recomputed from the
  prices shown; positions and equity are marked at the same prices; crypto as it is;
- a limit buy (sell) fills at the first bar starting at or after the order whose low (high)
  reaches the limit, at the limit or at that bar's open if it gapped through;
- an entry's stop-loss and take-profit are working exit orders: each closed bar that started at
  or after the entry is checked, the stop when the low reaches it, the target when the high
  reaches it; a bar that opens beyond a level (a gap) fills the order its open crosses, at the
  open, whatever the bar does next; a bar that opens between the levels and touches both fills
  the stop (``bot.brokers.rules.first_touch``: the backtests' rule too);
- commission is a fraction of notional, charged on every fill;
- no shorting, no margin: a buy needs the cash, a sell needs the shares;
- liquidity (``max_fill_qty``, off by default): at most that quantity of one order executes per
  bar. A larger market order fills that much on arrival and the same again at the open of each
  later bar; a limit order that much on each bar that reaches its limit. Every execution is a
  fill of its own (``partially_filled`` until the last). A sell's remainder is canceled if the
  position is gone (a stop took it), a buy's if the cash no longer covers it. Stops and targets
  always close the whole position.

Every execution is reported by ``sync`` until ``acknowledge`` names it (``sim_fills``); an order
executed in one go keeps the fill id ``sim-<client order id>``, executions in parts are
``sim-<client order id>-<cumulative quantity>``. ``cancel`` stops an order's remainder.

The exchange keeps its own books (cash, positions, orders) in the ``sim_*`` tables of the same
database, so successive ``tradebot tick`` runs continue one account.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Protocol

from sqlmodel import Session, col, select

from bot.bars import NS, Bars, Timeframe
from bot.brokers.base import BrokerUpdate, OrderRejected
from bot.brokers.rules import buy_refusal, fill_price, first_touch
from bot.clock import Clock
from bot.domain import (
    Account,
    CoverState,
    ExitReason,
    Fill,
    Order,
    OrderIntent,
    OrderStatus,
    OrderType,
    Position,
    Side,
    StopCover,
)
from bot.risk import QtyRules
from storage.db import Database, DatabaseError
from storage.models import SimAccountRow, SimFillRow, SimOrderRow, SimPositionRow
from storage.repository import aware, utc

log = logging.getLogger(__name__)
EPSILON = 1e-9
_WORKING = (OrderStatus.NEW.value, OrderStatus.PARTIALLY_FILLED.value)


class PriceFeed(Protocol):
    def price_at(self, symbol: str, when: datetime) -> float: ...

    def fetch(
        self, symbols: list[str], timeframe: Timeframe, start: datetime, end: datetime
    ) -> dict[str, Bars]: ...


class SimBroker:
    name = "sim"
    mode = "sim"

    def __init__(
        self,
        db: Database,
        market: PriceFeed,
        clock: Clock,
        *,
        timeframe: Timeframe,
        starting_cash: float = 100_000.0,
        commission: float = 0.0,
        max_fill_qty: float | None = None,
    ) -> None:
        if max_fill_qty is not None and max_fill_qty <= 0:
            raise ValueError(f"max_fill_qty must be positive, got {max_fill_qty}")
        self.db = db
        self.market = market
        self.clock = clock
        self.timeframe = timeframe
        self.commission = commission
        self.max_fill_qty = max_fill_qty
        try:
            with db.session() as s:
                if s.get(SimAccountRow, 1) is None:
                    s.add(SimAccountRow(id=1, cash=starting_cash, starting_cash=starting_cash))
        except DatabaseError:
            # Two processes opening a new database at once: the other one created the account.
            with db.session() as s:
                if s.get(SimAccountRow, 1) is None:
                    raise

    # --- reads ---

    def _now(self) -> datetime:
        return self.clock.now()

    def account(self) -> Account:
        now = self._now()
        with self.db.session() as s:
            cash = s.get(SimAccountRow, 1).cash  # type: ignore[union-attr]
            value = sum(
                row.qty * self._market_price(row.symbol, now)
                for row in s.exec(select(SimPositionRow).order_by(SimPositionRow.symbol))
            )
        return Account(cash=cash, equity=cash + value, buying_power=cash)

    def positions(self) -> list[Position]:
        now = self._now()
        with self.db.session() as s:
            rows = list(s.exec(select(SimPositionRow).order_by(SimPositionRow.symbol)))
        return [
            Position(
                symbol=r.symbol,
                qty=r.qty,
                avg_price=r.avg_price,
                market_price=self._market_price(r.symbol, now),
                stop_loss=r.stop_loss,
                take_profit=r.take_profit,
                opened_at=aware(r.opened_at),
            )
            for r in rows
        ]

    def open_orders(self) -> list[Order]:
        with self.db.session() as s:
            rows = s.exec(select(SimOrderRow).where(col(SimOrderRow.status).in_(_WORKING)))
            return [_order(r) for r in rows]

    def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        with self.db.session() as s:
            row = _find(s, client_order_id)
            return None if row is None else _order(row)

    def is_tradable_now(self, symbol: str, now: datetime) -> bool:
        return True  # the simulated market never closes

    def latest_price(self, symbol: str, now: datetime) -> float | None:
        return self._market_price(symbol, now)

    def qty_rules(self, symbol: str) -> QtyRules:
        """Whole shares for stocks (the entries' brackets), 0.000001 for crypto; any sell of what
        is held is taken, however small."""
        return QtyRules.default(symbol)

    # --- orders ---

    def submit(self, intent: OrderIntent) -> Order:
        now = self._now()
        with self.db.session() as s:
            existing = _find(s, intent.client_order_id)
            if existing is not None:  # idempotent, as a real exchange's unique client id
                return _order(existing)
            row = SimOrderRow(
                client_order_id=intent.client_order_id,
                symbol=intent.symbol,
                side=intent.side.value,
                qty=intent.qty,
                order_type=intent.order_type.value,
                limit_price=intent.limit_price,
                stop_loss=intent.stop_loss,
                take_profit=intent.take_profit,
                status=OrderStatus.NEW.value,
                exit_reason=intent.exit_reason.value if intent.exit_reason else None,
                submitted_at=utc(now),
            )
            problem = self._reject_reason(s, intent, now)
            if problem:
                row.status = OrderStatus.REJECTED.value
                row.reject_reason = problem
                s.add(row)
            else:
                s.add(row)
                if intent.order_type is OrderType.MARKET:
                    self._fill(s, row, self._market_price(intent.symbol, now), now, self._share(row))
        if problem:
            raise OrderRejected(problem)
        return self.get_order_by_client_id(intent.client_order_id)  # type: ignore[return-value]

    def cancel(self, client_order_id: str) -> Order:
        with self.db.session() as s:
            row = _find(s, client_order_id)
            if row is None:
                raise OrderRejected(f"no order {client_order_id} at the simulated exchange")
            if row.status in _WORKING:
                self._end(s, row, OrderStatus.CANCELED, None)
            return _order(row)

    def _share(self, row: SimOrderRow) -> float:
        """How much of ``row`` may execute in one bar: what remains, up to ``max_fill_qty``."""
        remaining = row.qty - row.filled_qty
        return remaining if self.max_fill_qty is None else min(remaining, self.max_fill_qty)

    def _end(self, s: Session, row: SimOrderRow, status: OrderStatus, reason: str | None) -> None:
        row.status = status.value
        row.reject_reason = reason or row.reject_reason
        row.reported = False
        s.add(row)

    def _market_price(self, symbol: str, now: datetime) -> float:
        """The price of ``symbol`` now, on the tick grid: what a market order arriving now fills at,
        and what positions and equity are marked at (so a position is worth what it cost the
        moment it fills)."""
        return fill_price(symbol, self.market.price_at(symbol, now))

    def _reject_reason(self, s: Session, intent: OrderIntent, now: datetime) -> str | None:
        if intent.qty <= 0:
            return f"quantity must be positive, got {intent.qty}"
        price = intent.limit_price or self._market_price(intent.symbol, now)
        if intent.side is Side.BUY:
            cash = s.get(SimAccountRow, 1).cash  # type: ignore[union-attr]
            return buy_refusal(intent.qty, price, cash, self.commission)
        held = s.get(SimPositionRow, intent.symbol)
        if held is None or held.qty + EPSILON < intent.qty:
            have = 0 if held is None else held.qty
            return f"cannot sell {intent.qty:g} {intent.symbol}: holding {have:g} (no short selling)"
        return None

    def _fill(
        self, s: Session, row: SimOrderRow, price: float, when: datetime, qty: float | None = None
    ) -> None:
        """Execute ``qty`` of ``row`` (all that remains by default) at ``price``: books, cash,
        commission, and one ``sim_fills`` row."""
        qty = row.qty - row.filled_qty if qty is None else qty
        fee = qty * price * self.commission
        account = s.get(SimAccountRow, 1)
        position = s.get(SimPositionRow, row.symbol)
        if row.side == Side.BUY.value:
            account.cash -= qty * price + fee  # type: ignore[union-attr]
            if position is None:
                position = SimPositionRow(
                    symbol=row.symbol,
                    qty=0.0,
                    avg_price=0.0,
                    opened_at=utc(when),
                    entry_client_order_id=row.client_order_id,
                )
            total = position.qty + qty
            position.avg_price = (position.avg_price * position.qty + price * qty) / total
            position.qty = total
            if row.stop_loss is not None or row.take_profit is not None:
                position.stop_loss, position.take_profit = row.stop_loss, row.take_profit
                position.entry_client_order_id = row.client_order_id
            s.add(position)
        else:
            account.cash += qty * price - fee  # type: ignore[union-attr]
            position.qty -= qty  # type: ignore[union-attr]
            if position.qty <= EPSILON:  # type: ignore[union-attr]
                s.delete(position)
            else:
                s.add(position)
        s.add(account)
        whole = row.filled_qty == 0 and qty + EPSILON >= row.qty
        cum = row.filled_qty + qty
        row.filled_avg_price = ((row.filled_avg_price or 0.0) * row.filled_qty + price * qty) / cum
        row.filled_qty = row.qty if cum + EPSILON >= row.qty else cum
        row.status = (OrderStatus.FILLED if row.filled_qty >= row.qty else OrderStatus.PARTIALLY_FILLED).value
        row.commission += fee
        row.filled_at = utc(when)
        row.reported = False
        s.add(row)
        fill_id = f"sim-{row.client_order_id}" if whole else f"sim-{row.client_order_id}-{_qty_key(cum)}"
        s.add(
            SimFillRow(
                fill_id=fill_id,
                client_order_id=row.client_order_id,
                qty=qty,
                price=price,
                commission=fee,
                time=utc(when),
            )
        )

    # --- time passes ---

    def sync(self, now: datetime) -> BrokerUpdate:
        """Run the bars since the last sync (stops, targets, limits, remainders of orders filling
        in parts); report every unacknowledged execution and each order whose status changed."""
        with self.db.session() as s:
            account = s.get(SimAccountRow, 1)
            since = aware(account.last_sync) if account.last_sync else None  # type: ignore[union-attr]
            self._run_remainders(s, since, now)  # at bars' opens: before what happens inside them
            self._run_protective_exits(s, since, now)
            self._run_limit_orders(s, since, now)
            account.last_sync = utc(now)  # type: ignore[union-attr]
            s.add(account)
            s.flush()
            changed = list(s.exec(select(SimOrderRow).where(col(SimOrderRow.reported).is_(False))))
            orders = [_order(r) for r in changed]
            for row in changed:
                row.reported = True
                s.add(row)
            unacknowledged = s.exec(
                select(SimFillRow, SimOrderRow)
                .join(SimOrderRow, col(SimOrderRow.client_order_id) == col(SimFillRow.client_order_id))
                .where(col(SimFillRow.acknowledged).is_(False))
                .order_by(col(SimFillRow.id))
            )
            fills = [_fill_of(fill, order) for fill, order in unacknowledged]
        return BrokerUpdate(fills=fills, orders=orders)

    def acknowledge(self, fill_ids: list[str]) -> None:
        if not fill_ids:
            return
        with self.db.session() as s:
            for row in s.exec(select(SimFillRow).where(col(SimFillRow.fill_id).in_(fill_ids))):
                row.acknowledged = True
                s.add(row)

    def report_fills_since(self, since: datetime | None) -> None:
        """Nothing to do: unacknowledged executions wait in the exchange's own books."""

    def ensure_protection(self, positions: list[Position]) -> list[str]:
        """Stops and targets live in the exchange's own books (``sim_positions``): nothing to re-arm."""
        return []

    def check_protection(self, positions: list[Position]) -> list[StopCover]:
        """A stop on the exchange's books closes the whole position (the fill model above)."""
        out = []
        for held in self.positions():
            if held.stop_loss is not None:
                state, note = CoverState.PROTECTED, "stop on the simulated exchange's books"
            else:
                state, note = CoverState.UNPROTECTED, "no stop on the simulated exchange's books"
            covered = held.qty if held.stop_loss is not None else 0.0
            out.append(
                StopCover(held.symbol, held.qty, covered, held.stop_loss, held.take_profit, state, note)
            )
        return out

    def _closed_bars(self, symbol: str, placed: datetime, since: datetime | None, now: datetime) -> Bars:
        """Bars to check for an order placed at ``placed``: those starting at or after that moment
        (a bar it was placed in the middle of is skipped: part of its range came before the
        order), closed by ``now`` and not already checked at the last sync ``since`` (the bar
        that was still forming then is checked now)."""
        first = self.timeframe.floor(placed)
        if first < placed:
            first += timedelta(seconds=self.timeframe.seconds)
        if since is not None:
            first = max(first, self.timeframe.floor(since))
        end = self.timeframe.floor(now)
        if first >= end:
            return Bars.empty()
        return self.market.fetch([symbol], self.timeframe, first, end).get(symbol, Bars.empty())

    def _run_protective_exits(self, s: Session, since: datetime | None, now: datetime) -> None:
        """Stops and targets: walk every bar that closed since the later of entry and last sync."""
        for position in list(s.exec(select(SimPositionRow).order_by(SimPositionRow.symbol))):
            if position.stop_loss is None and position.take_profit is None:
                continue
            bars = self._closed_bars(position.symbol, aware(position.opened_at), since, now)  # type: ignore[arg-type]
            hit = first_touch(bars, stop=position.stop_loss, target=position.take_profit)
            if hit is None:
                continue
            index, touched, reason = hit
            price = fill_price(position.symbol, touched)
            when = _bar_time(bars, index)
            suffix = "sl" if reason is ExitReason.STOP_LOSS else "tp"
            exit_row = SimOrderRow(
                client_order_id=f"{position.entry_client_order_id or position.symbol}-{suffix}",
                symbol=position.symbol,
                side=Side.SELL.value,
                qty=position.qty,
                order_type="stop" if reason is ExitReason.STOP_LOSS else "limit",
                status=OrderStatus.NEW.value,
                exit_reason=reason.value,
                submitted_at=utc(when),
            )
            if _find(s, exit_row.client_order_id) is not None:  # an earlier exit of a re-entry
                exit_row.client_order_id += f"-{int(when.timestamp())}"
            s.add(exit_row)
            self._fill(s, exit_row, price, when)

    def _run_limit_orders(self, s: Session, since: datetime | None, now: datetime) -> None:
        query = select(SimOrderRow).where(
            col(SimOrderRow.status).in_(_WORKING), col(SimOrderRow.order_type) == "limit"
        )
        for row in list(s.exec(query)):
            bars = self._closed_bars(row.symbol, aware(row.submitted_at), since, now)  # type: ignore[arg-type]
            limit = row.limit_price or 0.0
            for i in range(len(bars)):
                if row.side == Side.BUY.value and bars.low[i] <= limit:
                    price = min(limit, float(bars.open[i]))
                elif row.side == Side.SELL.value and bars.high[i] >= limit:
                    price = max(limit, float(bars.open[i]))
                else:
                    continue
                if not self._execute_part(s, row, fill_price(row.symbol, price), _bar_time(bars, i)):
                    break

    def _run_remainders(self, s: Session, since: datetime | None, now: datetime) -> None:
        """Market orders filling in parts (``max_fill_qty``): one more part at each later bar's open."""
        query = select(SimOrderRow).where(
            col(SimOrderRow.status) == OrderStatus.PARTIALLY_FILLED.value,
            col(SimOrderRow.order_type) == "market",
        )
        for row in list(s.exec(query)):
            bars = self._closed_bars(row.symbol, aware(row.submitted_at), since, now)  # type: ignore[arg-type]
            for i in range(len(bars)):
                opening = fill_price(row.symbol, float(bars.open[i]))
                if not self._execute_part(s, row, opening, _bar_time(bars, i)):
                    break

    def _execute_part(self, s: Session, row: SimOrderRow, price: float, when: datetime) -> bool:
        """One bar's execution of ``row``; False once the order is done (filled or canceled)."""
        qty = self._share(row)
        if row.side == Side.SELL.value:
            position = s.get(SimPositionRow, row.symbol)
            qty = min(qty, position.qty if position is not None else 0.0)
            if qty <= EPSILON:
                self._end(
                    s, row, OrderStatus.CANCELED, f"nothing left to sell: {row.symbol} is no longer held"
                )
                return False
        else:
            cash = s.get(SimAccountRow, 1).cash  # type: ignore[union-attr]
            refusal = buy_refusal(qty, price, cash, self.commission)
            if refusal:
                self._end(s, row, OrderStatus.CANCELED, f"the rest canceled: {refusal}")
                return False
        self._fill(s, row, price, when, qty)
        return row.status == OrderStatus.PARTIALLY_FILLED.value


def _bar_time(bars: Bars, index: int) -> datetime:
    from datetime import UTC

    return datetime.fromtimestamp(int(bars.time[index]) / NS, tz=UTC)


def _find(s: Session, client_order_id: str) -> SimOrderRow | None:
    return s.exec(select(SimOrderRow).where(SimOrderRow.client_order_id == client_order_id)).first()


def _order(row: SimOrderRow) -> Order:
    return Order(
        client_order_id=row.client_order_id,
        broker_order_id=f"sim-{row.id}",
        symbol=row.symbol,
        side=Side(row.side),
        qty=row.qty,
        status=OrderStatus(row.status),
        order_type=OrderType.LIMIT
        if row.order_type == "limit" and row.exit_reason is None
        else OrderType.MARKET,
        limit_price=row.limit_price,
        stop_loss=row.stop_loss,
        take_profit=row.take_profit,
        filled_qty=row.filled_qty,
        filled_avg_price=row.filled_avg_price,
        exit_reason=ExitReason(row.exit_reason) if row.exit_reason else None,
        created_at=aware(row.submitted_at),
        updated_at=aware(row.filled_at or row.submitted_at),
        error=row.reject_reason,
    )


def _fill_of(fill: SimFillRow, order: SimOrderRow) -> Fill:
    return Fill(
        fill_id=fill.fill_id,
        client_order_id=fill.client_order_id,
        symbol=order.symbol,
        side=Side(order.side),
        qty=fill.qty,
        price=fill.price,
        time=aware(fill.time),  # type: ignore[arg-type]
        commission=fill.commission,
        exit_reason=ExitReason(order.exit_reason) if order.exit_reason else None,
    )


def _qty_key(qty: float) -> str:
    return f"{qty:.9f}".rstrip("0").rstrip(".")
