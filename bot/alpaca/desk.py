"""From an ``OrderIntent`` to the alpaca-py request Alpaca will take, after saying what it would refuse.

The checks are ``bot.alpaca.rules`` (each names its source); this module reads what they need
(the asset, the working orders, what is held) and builds the request: a GTC bracket for a stock
entry with a stop or target (OTO with one of them), a simple order otherwise; crypto ``gtc``;
a fractional stock order a day order.
"""

from __future__ import annotations

from typing import Any

from alpaca.trading.enums import OrderClass, TimeInForce
from alpaca.trading.enums import OrderSide as AlpacaSide
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest, StopLossRequest, TakeProfitRequest

from bot.alpaca import rules
from bot.alpaca.convert import qty_key
from bot.alpaca.venue import AlpacaVenue
from bot.brokers.base import OrderRejected
from bot.domain import OrderIntent, OrderType, Side
from bot.domain import is_crypto as crypto_symbol
from bot.risk import QtyRules


class OrderDesk:
    def __init__(self, venue: AlpacaVenue) -> None:
        self.venue = venue

    def qty_rules(self, symbol: str) -> QtyRules:
        """From the asset: crypto at least ``min_order_size``, a multiple of ``min_trade_increment``
        (a smaller remainder cannot be sold: dust); stocks in whole shares (entries carry a
        bracket), a fractional remainder sold whole where the asset is fractionable."""
        if crypto_symbol(symbol):
            step, minimum = self.venue.step(symbol)
            return QtyRules(min_qty=minimum, step=step, sells_any_remainder=False)
        return QtyRules(
            min_qty=1.0, step=1.0, sells_any_remainder=bool(self.venue.asset(symbol).fractionable)
        )

    def prepare(self, intent: OrderIntent) -> Any:
        """Check what Alpaca would refuse and say why; build the alpaca-py request. A sell is
        checked against what Alpaca holds now (``bot.alpaca.protection`` re-reads and caps it once
        the stop and target are released)."""
        symbol, qty, crypto = intent.symbol, intent.qty, crypto_symbol(intent.symbol)
        what = f"{intent.side.value} {qty_key(qty)} {symbol}"
        rules.check_positive(what, qty)
        asset = self.venue.asset(symbol)
        rules.check_tradable(what, symbol, asset)
        buy = intent.side is Side.BUY
        bracket = not crypto and buy and (intent.stop_loss is not None or intent.take_profit is not None)
        if crypto:
            qty = rules.crypto_qty(what, symbol, qty, asset)
        else:
            qty = rules.stock_qty(
                what, symbol, qty, asset, bracket=bracket, market=intent.order_type is OrderType.MARKET
            )
        if intent.order_type is OrderType.LIMIT and intent.limit_price is None:
            raise OrderRejected(f"{what}: a limit order needs a limit price")
        if bracket:
            reference = intent.limit_price or self.venue.price(symbol)
            rules.check_levels(what, stop=intent.stop_loss, target=intent.take_profit, reference=reference)
        other = None if bracket else rules.wash_conflict(buy, self.venue.working(symbol))
        if other is not None:
            raise OrderRejected(rules.wash_message(what, symbol, other))
        if not buy:
            qty = rules.sellable(what, symbol, qty, self.venue.held(symbol))
            if crypto:
                qty = rules.crypto_qty(what, symbol, qty, asset)
        return self.request(intent, qty, bracket)

    def request(self, intent: OrderIntent, qty: float, bracket: bool) -> Any:
        symbol = intent.symbol
        fields: dict[str, Any] = {
            "symbol": symbol,
            "qty": qty,
            "side": AlpacaSide.BUY if intent.side is Side.BUY else AlpacaSide.SELL,
            "client_order_id": intent.client_order_id,
            # crypto takes gtc or ioc; bracket legs should outlive the day; fractional orders are day orders
            "time_in_force": TimeInForce.GTC if crypto_symbol(symbol) or bracket else TimeInForce.DAY,
        }
        if bracket:
            both = intent.stop_loss is not None and intent.take_profit is not None
            fields["order_class"] = OrderClass.BRACKET if both else OrderClass.OTO
            if intent.take_profit is not None:
                fields["take_profit"] = TakeProfitRequest(
                    limit_price=self.venue.grid(symbol, intent.take_profit)
                )
            if intent.stop_loss is not None:
                fields["stop_loss"] = StopLossRequest(stop_price=self.venue.grid(symbol, intent.stop_loss))
        if intent.order_type is OrderType.LIMIT:
            price = self.venue.grid(symbol, float(intent.limit_price or 0))
            return LimitOrderRequest(limit_price=price, **fields)
        return MarketOrderRequest(**fields)
