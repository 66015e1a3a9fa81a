"""The crypto guards: a crypto position's protection at Alpaca, which takes no brackets for crypto.

After a crypto entry fills, a GTC stop-limit sell guards the stop at Alpaca (it works while the
bot is down; its limit sits ``CRYPTO_STOP_LIMIT_SLIPPAGE`` below the stop) for what Alpaca holds,
floored to the pair's ``min_trade_increment`` (the fee comes out of the coins: a buy of 0.1 BTC
leaves about 0.09975); a remainder below the increment or the smallest order is dust, said so.
The target is watched on every sync against the latest trade price; reached (or the price
gapped through the stop-limit's limit), the stop is released and the coins sold at market, each
attempt under a client id of its own; a market exit that fails puts the stop back at once.
After a restart, a crypto position with levels on record is guarded again, adopting its working
stop, so its target is watched.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from alpaca.trading.enums import OrderStatus as AlpacaStatus

from bot.alpaca import rules
from bot.alpaca.convert import as_float, is_open, qty_key, status, symbol_of
from bot.alpaca.holdings import EPSILON
from bot.alpaca.protect import (
    CRYPTO_STOP_LIMIT_SLIPPAGE,
    CryptoGuard,
    crypto_stop_request,
    market_sell,
    place_protective,
)
from bot.alpaca.venue import AlpacaVenue
from bot.brokers.base import BrokerError, OrderRejected
from bot.domain import ExitReason, OrderIntent, OrderStatus, Position, Side, client_order_id
from bot.domain import is_crypto as crypto_symbol

if TYPE_CHECKING:
    from bot.alpaca.protection import Protection, Released

log = logging.getLogger(__name__)


class CryptoGuards:
    def __init__(self, venue: AlpacaVenue, protection: Protection) -> None:
        self.venue = venue
        self.protection = protection
        self._by_key: dict[str, CryptoGuard] = {}

    def all(self) -> list[CryptoGuard]:
        return list(self._by_key.values())

    def of(self, symbol: str) -> CryptoGuard | None:
        return next((g for g in self._by_key.values() if g.symbol == symbol), None)

    def put(self, guard: CryptoGuard) -> None:
        self._by_key[guard.key] = guard

    def drop(self, key: str) -> None:
        self._by_key.pop(key, None)

    def take(self, symbol: str) -> list[CryptoGuard]:
        """Stop guarding ``symbol`` (its stop is being released); the guards, to put back."""
        taken = [g for g in self._by_key.values() if g.symbol == symbol]
        for guard in taken:
            self.drop(guard.key)
        return taken

    def restore(self, released: Released, held: float) -> str:
        """Put the stop ``release`` canceled back for ``held``; say what came back."""
        symbol = released.symbol
        guard = released.guards[0] if released.guards else None
        if guard is None:
            if released.stop is None:
                return f"{symbol} had no stop at Alpaca to put back"
            guard = CryptoGuard(f"restore:{released.key}", "", symbol, released.stop, released.target)
        guard.stop_client_order_id, guard.entry_order_id = None, ""
        self.put(guard)
        keep, note = self.place_stop(guard, held)
        if not keep:
            self.drop(guard.key)
            return note
        return f"{symbol}'s stop {guard.stop} was put back at Alpaca for {qty_key(guard.qty)}{note}"

    def arm(self, intent: OrderIntent, raw: Any) -> None:
        """After a crypto entry with a stop or target: guard it once it has filled."""
        if (
            crypto_symbol(intent.symbol)
            and intent.side is Side.BUY
            and (intent.stop_loss or intent.take_profit)
        ):
            self._by_key.setdefault(
                intent.client_order_id,
                CryptoGuard(
                    intent.client_order_id, str(raw.id), intent.symbol, intent.stop_loss, intent.take_profit
                ),
            )

    def rearm(self, rows: list[Any], books: dict[str, Position]) -> None:
        """After a restart: a crypto position with levels on record is guarded again (adopting its
        working stop), so its target is watched."""
        guarded = {g.symbol for g in self.all()}
        for row in rows:
            symbol = symbol_of(row)
            position = books.get(symbol)
            if not crypto_symbol(symbol) or symbol in guarded or position is None:
                continue
            if position.stop_loss is None and position.take_profit is None:
                continue
            key = client_order_id("guard", symbol, position.opened_at or "", position.qty)
            guard = CryptoGuard(key, "", symbol, position.stop_loss, position.take_profit)
            stop = next(iter(self.protection.holding(symbol).stops), None)
            if stop is not None:
                guard.stop_client_order_id, guard.qty = str(stop.client_order_id), as_float(stop.qty) or 0.0
            self.put(guard)
            log.warning(
                "re-armed the crypto guard of %s (stop %s, target %s)", symbol, guard.stop, guard.target
            )

    def run(self) -> list[str]:
        """One sync's work for every crypto guard; problems and notes for alerts."""
        alerts = []
        for guard in list(self.all()):
            try:
                keep, note = self._run_one(guard)
            except BrokerError as exc:
                log.error("crypto protection for %s (%s): %s", guard.symbol, guard.key, exc)
                alerts.append(
                    f"{guard.symbol} may be unprotected: its stop or target could not be handled: {exc}"
                )
                continue
            if note:
                alerts.append(f"{guard.symbol}: {note.lstrip('; ')}")
            if not keep:
                self.drop(guard.key)
        return alerts

    def _run_one(self, guard: CryptoGuard) -> tuple[bool, str]:
        """One sync's work for one guard. Returns (keep the guard, a note for an alert or "")."""
        note = ""
        if guard.stop_client_order_id is None:
            held = self.venue.held(guard.symbol)
            if guard.entry_order_id:
                entry = self.venue.order(guard.entry_order_id)
                if is_open(entry):
                    return True, ""  # wait until the entry is final, then protect what filled
                held = min(as_float(entry.filled_qty) or 0.0, held)
                guard.entry_order_id = ""
            keep, note = self.place_stop(guard, held)
            if not keep:
                return False, note
        price = self.venue.price(guard.symbol)
        if price is None:
            return True, note
        stop_order = self.venue.find(guard.stop_client_order_id) if guard.stop_client_order_id else None
        if stop_order is not None and not is_open(stop_order):
            if status(stop_order) is OrderStatus.FILLED or stop_order.status == AlpacaStatus.REPLACED:
                return False, note  # the stop did its job
            guard.stop_client_order_id = None  # canceled outside the bot: place it again next time
            return (
                True,
                note + f"; {guard.symbol}'s stop was {stop_order.status.value} at Alpaca: placing it again",
            )
        reason = None
        if guard.target is not None and price >= guard.target:
            reason = ExitReason.TAKE_PROFIT
        elif stop_order is not None and price <= (as_float(stop_order.limit_price) or 0.0):
            reason = ExitReason.STOP_LOSS  # gapped through the stop-limit's limit: get out at market
        if reason is None:
            return True, note
        return self._exit(guard, reason, price, note)

    def place_stop(self, guard: CryptoGuard, held: float) -> tuple[bool, str]:
        """The guard's stop-limit at Alpaca for what is held, floored to the pair's increment.
        (False, why) when nothing can carry a stop (dust)."""
        symbol = guard.symbol
        step, minimum = self.venue.step(symbol)
        qty = rules.floor_qty(held, step) if held > EPSILON else 0.0
        if qty + 1e-12 < minimum:
            if held <= EPSILON:
                return False, ""
            return False, (
                f"{qty_key(held)} {symbol} held is below Alpaca's smallest order of {qty_key(minimum)}: "
                "dust, no stop can carry it"
            )
        guard.qty = qty
        if held - qty > 1e-12:  # the fee's leftover: every crypto buy leaves some; /status says so
            log.info(
                "%s %s below the pair's increment stays without a stop (dust)", qty_key(held - qty), symbol
            )
        note = ""
        if guard.stop is None:
            guard.stop_client_order_id = ""
            return True, note
        stop = self.venue.grid(symbol, guard.stop)
        limit = self.venue.grid(symbol, stop * (1 - CRYPTO_STOP_LIMIT_SLIPPAGE))
        raw, more = place_protective(
            self.venue, lambda coid: crypto_stop_request(guard, stop, limit, coid), guard.stop_ids
        )
        guard.stop_client_order_id = str(raw.client_order_id)
        log.info("crypto stop-limit %s guards %s %s at %s", raw.client_order_id, qty_key(qty), symbol, stop)
        return True, note + (f"; {more}" if more else "")

    def _exit(self, guard: CryptoGuard, reason: ExitReason, price: float, note: str) -> tuple[bool, str]:
        symbol = guard.symbol
        try:
            released = self.protection.release(symbol, what=f"{reason.value} exit of {symbol}")
        except OrderRejected as exc:
            self.put(guard)
            return True, note + f"; {exc}"
        except BrokerError as exc:  # what it canceled is back (restore re-armed the guard)
            return True, note + f"; {exc}"
        try:
            qty = self.protection.exit_qty(symbol, released.held_after, released)
        except OrderRejected as exc:
            return False, note + f"; {exc}"
        guard.exits += 1
        try:
            raw, more = place_protective(
                self.venue,
                lambda coid: market_sell(symbol, qty, coid, crypto=True),
                lambda n: guard.exit_id(reason, n),
            )
        except BrokerError as exc:
            back = self.protection.restore(released)
            return True, note + f"; the {reason.value} market exit of {symbol} failed ({exc}). {back}"
        log.info("crypto %s for %s at %s: market exit %s sent", reason.value, symbol, price, raw.id)
        return False, note + (f"; {more}" if more else "")
