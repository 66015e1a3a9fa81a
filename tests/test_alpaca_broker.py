"""AlpacaBroker with alpaca-py's real TradingClient over HTTP against the fake Alpaca server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alpaca.trading.client import TradingClient

from bot.alpaca.broker import AlpacaBroker
from bot.alpaca.http import AlpacaHttp
from bot.alpaca.setup import build_alpaca
from bot.brokers.base import AuthenticationError, Broker, BrokerError, OrderRejected
from bot.config import ConfigError, Settings
from bot.domain import ExitReason, OrderIntent, OrderStatus, OrderType, Position, Side, client_order_id
from tests.fakes.alpaca import FakeAlpaca

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


@pytest.fixture
def fake():
    with FakeAlpaca() as server:
        server.clock.set(NOW)  # a Monday, 10:00 in New York: the market is open
        server.prices.update({"AAPL": 100.0, "BTC/USD": 50_000.0})
        yield server


def make_broker(
    fake: FakeAlpaca, *, key: str = "test-key", secret: str = "test-secret", timeout: float = 5.0, **kw
):
    http = AlpacaHttp(timeout=timeout, sleep=lambda s: None)
    client = http.install(TradingClient(key, secret, paper=True, url_override=fake.url))
    return AlpacaBroker(
        client, paper=True, http=http, prices=_Prices(fake), cancel_wait=2.0, sleep=lambda s: None, **kw
    )


@pytest.fixture
def broker(fake):
    return make_broker(fake)


def entry(symbol: str = "AAPL", qty: float = 10, **kw) -> OrderIntent:
    fields = {
        "client_order_id": client_order_id("supertrend", symbol, NOW, "buy"),
        "symbol": symbol,
        "side": Side.BUY,
        "qty": qty,
        "stop_loss": 95.0,
        "take_profit": 110.0,
        "strategy": "supertrend",
    }
    fields.update(kw)
    return OrderIntent(**fields)


def settings_for(fake: FakeAlpaca, **extra: str) -> Settings:
    values = {
        "ALPACA_API_KEY": "test-key",
        "ALPACA_API_SECRET": "test-secret",
        "ALPACA_TRADING_URL": fake.url,
        "ALPACA_DATA_URL": fake.url,
    }
    values.update(extra)
    return Settings.from_mapping(values)


def test_implements_the_broker_protocol(broker):
    assert isinstance(broker, Broker)
    assert broker.mode == "paper" and broker.name == "alpaca"


def test_account_and_clock(fake, broker):
    account = broker.account()
    assert account.cash == 100_000 and account.equity == 100_000 and account.currency == "USD"
    assert broker.is_tradable_now("AAPL", NOW)
    fake.clock.set(datetime(2026, 1, 3, 15, 0, tzinfo=UTC))  # a Saturday
    broker.venue.clear()
    assert not broker.is_tradable_now("AAPL", datetime(2026, 1, 3, 15, 0, tzinfo=UTC))
    assert broker.is_tradable_now("BTC/USD", NOW)  # crypto trades around the clock, no clock call
    calls = len(fake.requests_to("GET", "/v2/clock"))
    broker.is_tradable_now("MSFT", NOW)
    assert len(fake.requests_to("GET", "/v2/clock")) == calls  # cached briefly


def test_wrong_keys_raise_a_clear_authentication_error(fake):
    broker = make_broker(fake, key="wrong", secret="nope")
    with pytest.raises(AuthenticationError) as info:
        broker.check_credentials()
    message = str(info.value)
    assert "ALPACA_API_KEY" in message and "401" in message and "paper" in message
    assert "nope" not in message and "wrong" not in message  # never echo a secret


def test_build_alpaca_checks_the_keys_and_never_falls_back(fake):
    with pytest.raises(AuthenticationError, match="ALPACA_API_SECRET"):
        build_alpaca(settings_for(fake, ALPACA_API_SECRET="bad"))
    broker, source = build_alpaca(settings_for(fake))
    assert broker.mode == "paper" and source.name == "alpaca"
    live, _ = build_alpaca(settings_for(fake, ALPACA_PAPER="false"))
    assert live.mode == "live"
    _, poly_source = build_alpaca(settings_for(fake, POLYGON_API_KEY="pk", POLYGON_BASE_URL=fake.url))
    assert poly_source.name == "alpaca+polygon"


def test_a_live_url_with_paper_mode_is_refused(fake):
    with pytest.raises(ConfigError, match="ALPACA_PAPER"):
        build_alpaca(settings_for(fake, ALPACA_TRADING_URL="https://api.alpaca.markets"))


def test_submit_sends_a_gtc_bracket_with_the_client_order_id(fake, broker):
    intent = entry(stop_loss=95.004, take_profit=110.456)
    order = broker.submit(intent)
    posts = fake.requests_to("POST", "/v2/orders")
    assert len(posts) == 1
    body = posts[0].body
    assert body["client_order_id"] == intent.client_order_id
    assert body["order_class"] == "bracket" and body["time_in_force"] == "gtc"
    assert body["stop_loss"] == {"stop_price": 95.0} and body["take_profit"] == {"limit_price": 110.46}
    assert order.client_order_id == intent.client_order_id and order.status is OrderStatus.NEW
    assert order.stop_loss == 95.0 and order.take_profit == 110.46 and order.strategy == "supertrend"


def test_500_after_the_server_accepted_gives_exactly_one_order(fake, broker):
    fake.fail_after_accept = [500]
    order = broker.submit(entry())
    assert len(fake.top_orders()) == 1
    assert order.broker_order_id == fake.top_orders()[0].id
    assert len(fake.requests_to("POST", "/v2/orders")) == 1
    assert len(fake.requests_to("GET", "/v2/orders:by_client_order_id")) == 1


@pytest.mark.parametrize("failure", [504, "drop"])
def test_sdk_does_not_resend_a_submit_by_itself(fake, broker, failure):
    fake.fail_after_accept = [failure]
    order = broker.submit(entry())
    assert len(fake.requests_to("POST", "/v2/orders")) == 1  # alpaca-py's own 429/504 retry is off
    # found by its client id: a market order on a liquid symbol has filled inside the POST
    assert len(fake.top_orders()) == 1 and order.status is OrderStatus.FILLED


def test_timeout_after_accept_finds_the_order(fake):
    broker = make_broker(fake, timeout=0.3)
    fake.hang_seconds = 1.0
    order = broker.submit(entry())
    fake.hang_seconds = 0
    assert order.broker_order_id == fake.top_orders()[0].id
    assert len(fake.top_orders()) == 1


def test_failure_before_accept_is_retriable_and_the_resend_places_one(fake, broker):
    fake.fail_before_accept = [503]
    with pytest.raises(BrokerError) as info:
        broker.submit(entry())
    assert info.value.retriable and not isinstance(info.value, OrderRejected)
    assert fake.top_orders() == []
    broker.submit(entry())
    assert len(fake.top_orders()) == 1


def test_422_duplicate_client_id_is_treated_as_placed(fake, broker):
    intent = entry("BTC/USD", qty=0.1, stop_loss=None, take_profit=None)
    first = broker.submit(intent)
    again = broker.submit(intent)
    assert again.broker_order_id == first.broker_order_id
    assert len(fake.top_orders()) == 1
    assert [r.status for r in fake.requests_to("POST", "/v2/orders")] == [200, 422]


@pytest.mark.parametrize("liquid", [True, False])
def test_resending_a_placed_bracket_returns_it(fake, broker, liquid):
    if not liquid:
        fake.illiquid.add("AAPL")  # the entry rests: the resend reaches Alpaca, which says "unique"
    first = broker.submit(entry())
    again = broker.submit(entry())
    assert again.broker_order_id == first.broker_order_id
    assert len(fake.top_orders()) == 1
    assert [r.status for r in fake.requests_to("POST", "/v2/orders")] == [200, 422]


def test_get_order_by_client_id(fake, broker):
    assert broker.get_order_by_client_id("tb-nothing") is None
    placed = broker.submit(entry())
    assert broker.get_order_by_client_id(placed.client_order_id).broker_order_id == placed.broker_order_id


def test_reads_retry_on_5xx_with_backoff(fake, broker):
    fake.read_failures = 2
    assert broker.account().equity == 100_000
    fake.read_failures = 10
    broker.venue.clear()
    with pytest.raises(BrokerError, match="503") as info:
        broker.account()
    assert info.value.retriable
    assert len(fake.requests_to("GET", "/v2/account")) == 1 + 2 + 4  # 2 failures then a success; 4 tries


def test_fractional_bracket_is_refused_with_a_reason(fake, broker):
    with pytest.raises(OrderRejected, match="whole shares"):
        broker.submit(entry(qty=2.5))
    assert fake.requests_to("POST", "/v2/orders") == []


def test_fractional_market_order_without_protection_is_allowed(fake, broker):
    fake.add_position("AAPL", 3.75, 90.0)
    sell = OrderIntent("tb-x-sell", "AAPL", Side.SELL, 3.75, exit_reason=ExitReason.SIGNAL)
    broker.submit(sell)
    body = fake.requests_to("POST", "/v2/orders")[0].body
    assert body["qty"] == 3.75 and body["time_in_force"] == "day" and "order_class" not in body


def test_wash_trade_is_refused_before_sending(fake, broker):
    fake.add_position("AAPL", 5, 90.0)
    broker.submit(
        OrderIntent("tb-limit-sell", "AAPL", Side.SELL, 5, order_type=OrderType.LIMIT, limit_price=120.0)
    )
    with pytest.raises(OrderRejected, match="wash trade"):  # a simple buy; a bracket is a complex order
        broker.submit(entry(stop_loss=None, take_profit=None))
    assert len(fake.requests_to("POST", "/v2/orders")) == 1


def test_quantity_below_the_crypto_minimum_is_refused(fake, broker):
    fake.set_asset("BTC/USD", min_order_size="0.001")
    with pytest.raises(OrderRejected, match="minimum order size"):
        broker.submit(entry("BTC/USD", qty=0.0001, stop_loss=49_000.0, take_profit=52_000.0))


def test_a_small_margin_account_trades_without_pattern_day_trader_fields(fake, broker):
    """Alpaca removed ``pattern_day_trader`` and ``daytrade_count`` from the account (2026-07-06)."""
    fake.multiplier, fake.cash = "2", 20_000.0
    assert "pattern_day_trader" not in fake._account() and "daytrade_count" not in fake._account()
    broker.submit(entry(qty=10))
    assert len(fake.top_orders()) == 1


def test_sync_reports_fills_once_with_bracket_exit_reason(fake, broker):
    placed = broker.submit(entry())  # fills inside the POST at 100
    update = broker.sync(NOW)
    assert [(f.client_order_id, f.qty, f.price, f.exit_reason) for f in update.fills] == [
        (placed.client_order_id, 10.0, 100.0, None)
    ]
    assert any(
        o.client_order_id == placed.client_order_id and o.status is OrderStatus.FILLED for o in update.orders
    )
    assert [f.fill_id for f in broker.sync(NOW).fills] == [update.fills[0].fill_id]  # until acknowledged
    broker.acknowledge([f.fill_id for f in update.fills])
    assert broker.sync(NOW).fills == []
    stop_leg = next(leg for leg in fake.order(placed.client_order_id).legs if leg.type == "stop")
    fake.fill(stop_leg.client_order_id, price=95.0)
    fills = broker.sync(NOW).fills
    assert [(f.side, f.exit_reason, f.client_order_id) for f in fills] == [
        (Side.SELL, ExitReason.STOP_LOSS, stop_leg.client_order_id)
    ]
    # a fresh broker (a restart) reports the same executions under the same ids
    again = make_broker(fake).sync(NOW).fills
    assert {f.fill_id for f in again} == {f.fill_id for f in update.fills + fills}


def test_partial_fills_have_distinct_ids(fake, broker):
    fake.illiquid.add("AAPL")
    placed = broker.submit(entry())
    fake.fill(placed.client_order_id, price=100.0, qty=4)
    fake.fill(placed.client_order_id, price=101.0, qty=6)
    fills = broker.sync(NOW).fills
    assert [f.qty for f in fills] == [4.0, 6.0] and len({f.fill_id for f in fills}) == 2


def test_exit_cancels_the_bracket_legs_first(fake, broker):
    placed = broker.submit(entry())  # fills inside the POST at 100
    sell = OrderIntent("tb-exit", "AAPL", Side.SELL, 10, exit_reason=ExitReason.SIGNAL)
    broker.submit(sell)
    legs = fake.order(placed.client_order_id).legs
    assert all(leg.status == "canceled" for leg in legs)
    assert fake.order("tb-exit").side == "sell"


def test_positions_map_crypto_symbols_back(fake, broker):
    fake.add_position("BTC/USD", 0.5, 40_000.0, current=50_000.0)
    fake.add_position("AAPL", 10, 90.0)
    positions = {p.symbol: p for p in broker.positions()}
    assert set(positions) == {"BTC/USD", "AAPL"}
    assert positions["BTC/USD"].qty == 0.5 and positions["BTC/USD"].market_price == 50_000.0


def test_positions_carry_the_bracket_levels(fake, broker):
    broker.submit(entry())  # fills inside the POST at 100
    (position,) = broker.positions()
    assert position.stop_loss == 95.0 and position.take_profit == 110.0
    assert {o.exit_reason for o in broker.open_orders()} == {ExitReason.STOP_LOSS, ExitReason.TAKE_PROFIT}


# A buy of 0.1 BTC leaves 0.09975 (Alpaca's 25 bps fee comes out of the coins): the guard protects
# that, floored to the pair's 0.0001 increment.
BTC_GUARDED = 0.0997


def test_crypto_entry_is_simple_gtc_then_a_stop_limit_guards_it(fake, broker):
    intent = entry("BTC/USD", qty=0.1, stop_loss=49_000.0, take_profit=52_000.0)
    broker.submit(intent)  # fills inside the POST at 50,000
    body = fake.requests_to("POST", "/v2/orders")[0].body
    assert body["time_in_force"] == "gtc" and "order_class" not in body and body["symbol"] == "BTC/USD"
    broker.acknowledge([f.fill_id for f in broker.sync(NOW).fills])
    stop = fake.order(f"{intent.client_order_id}-sl")
    assert (stop.type, stop.side, stop.qty, stop.stop_price, stop.limit_price) == (
        "stop_limit",
        "sell",
        BTC_GUARDED,
        49_000.0,
        48_510.0,
    )
    # price reaches the target: the stop is canceled, a market sell goes out, reported as take-profit
    fake.prices["BTC/USD"] = 52_500.0
    broker.venue.clear()
    broker.sync(NOW)
    assert stop.status == "canceled"
    exit_order = fake.order(f"{intent.client_order_id}-tp")
    assert exit_order.side == "sell" and exit_order.type == "market"  # filled inside the POST
    fills = broker.sync(NOW).fills
    assert [f.exit_reason for f in fills] == [ExitReason.TAKE_PROFIT]


class _Prices:
    def __init__(self, fake: FakeAlpaca) -> None:
        self.fake = fake

    def latest_prices(self, symbols):
        return {s: self.fake.prices[s] for s in symbols if s in self.fake.prices}


@pytest.mark.parametrize("failure", ["refused", "unreachable"])
def test_an_exit_that_fails_after_canceling_the_legs_puts_the_protection_back(fake, broker, failure):
    broker.submit(entry())  # fills inside the POST at 100
    if failure == "refused":  # e.g. the asset was halted between the cancel and the sell
        original = fake.asset

        def halted(symbol):
            asset = original(symbol)
            return asset

        fake.fail_before_accept = [403]
    else:
        fake.fail_before_accept = [503]
    with pytest.raises(BrokerError, match="put back at Alpaca"):
        broker.submit(OrderIntent("tb-exit", "AAPL", Side.SELL, 10, exit_reason=ExitReason.SIGNAL))
    working = [o for o in fake.all_orders() if o.is_live and o.side == "sell"]
    assert sorted((o.order_class, o.type, o.qty) for o in working) == [
        ("oco", "limit", 10),
        ("oco", "stop", 10),
    ]
    assert {o.limit_price for o in working if o.type == "limit"} == {110.0}
    assert {o.stop_price for o in working if o.type == "stop"} == {95.0}


def test_a_partial_sell_protects_the_remainder(fake, broker):
    placed = broker.submit(entry())  # fills inside the POST at 100
    broker.submit(OrderIntent("tb-part", "AAPL", Side.SELL, 4, exit_reason=ExitReason.MANUAL))
    working = [o for o in fake.all_orders() if o.is_live and o.side == "sell" and o.order_class == "oco"]
    assert sorted((o.type, o.qty) for o in working) == [("limit", 6), ("stop", 6)]
    assert [o.status for o in fake.order(placed.client_order_id).legs] == ["canceled", "canceled"]


def test_a_crypto_stop_that_cannot_be_placed_is_reported_for_an_alert(fake, broker):
    intent = entry("BTC/USD", qty=0.1, stop_loss=49_000.0, take_profit=52_000.0)
    broker.submit(intent)  # fills inside the POST
    fake.fail_before_accept = [503] * 4  # every try of the stop fails this cycle
    update = broker.sync(NOW)
    assert len(update.alerts) == 1 and update.alerts[0].startswith("BTC/USD may be unprotected")
    # the next sync places the stop after all, and has nothing to report
    assert broker.sync(NOW).alerts == []
    assert fake.order(f"{intent.client_order_id}-sl").type == "stop_limit"


def btc_position(**kw) -> Position:
    fields = {
        "symbol": "BTC/USD",
        "qty": 0.1,
        "avg_price": 50_000.0,
        "stop_loss": 49_000.0,
        "take_profit": 52_000.0,
        "opened_at": NOW,
    }
    fields.update(kw)
    return Position(**fields)


def test_a_restart_before_the_crypto_stop_was_placed_places_it(fake):
    first = make_broker(fake)
    intent = entry("BTC/USD", qty=0.1, stop_loss=49_000.0, take_profit=52_000.0)
    first.submit(intent)  # fills inside the POST
    # the process dies before any sync: no stop at Alpaca; a new process starts
    restarted = make_broker(fake)
    (note,) = restarted.ensure_protection([btc_position()])
    assert note.startswith(f"BTC/USD had no stop at Alpaca: put back at 49000.0 for {BTC_GUARDED}")
    restarted.sync(NOW)
    stops = [o for o in fake.top_orders() if o.type == "stop_limit" and o.is_live]
    assert [(o.symbol, o.qty, o.stop_price) for o in stops] == [("BTC/USD", BTC_GUARDED, 49_000.0)]
    assert restarted.ensure_protection([btc_position()]) == []  # already guarded: nothing twice
    restarted.sync(NOW)
    assert len([o for o in fake.top_orders() if o.type == "stop_limit"]) == 1


def test_a_restart_adopts_the_working_crypto_stop_and_still_takes_profit(fake):
    first = make_broker(fake)
    intent = entry("BTC/USD", qty=0.1, stop_loss=49_000.0, take_profit=52_000.0)
    first.submit(intent)  # fills inside the POST
    first.sync(NOW)  # the stop is placed
    restarted = make_broker(fake)
    restarted.ensure_protection([btc_position()])
    fake.prices["BTC/USD"] = 52_500.0
    restarted.venue.clear()
    restarted.sync(NOW)
    assert fake.order(f"{intent.client_order_id}-sl").status == "canceled"
    exits = [o for o in fake.top_orders() if o.side == "sell" and o.type == "market"]
    assert len(exits) == 1 and exits[0].qty == BTC_GUARDED


def test_a_stock_position_whose_bracket_is_gone_is_protected_again_once(fake, broker):
    fake.add_position("AAPL", 10, 100.0)
    stock = Position(symbol="AAPL", qty=10, avg_price=100.0, stop_loss=95.0, take_profit=110.0)
    (note,) = broker.ensure_protection([stock])
    assert note.startswith("AAPL had no stop for 10 of 10 at Alpaca: put back")
    working = [o for o in fake.all_orders() if o.is_live]
    assert sorted((o.type, o.qty, o.stop_price or o.limit_price) for o in working) == [
        ("limit", 10, 110.0),
        ("stop", 10, 95.0),
    ]
    assert broker.ensure_protection([stock]) == []  # protected now: nothing more to say


@pytest.mark.parametrize("slash_404", [True, False])
def test_crypto_rules_come_from_the_pair_whichever_name_alpaca_answers_it_under(fake, slash_404):
    """``GET /v2/assets/BTC/USD`` may be a 404 (a slash in a path: alpaca-py#537): the pair is then
    found as ``BTCUSD``; a stock is asked under its own name only."""
    fake.slash_asset_404 = slash_404
    fake.set_asset("BTC/USD", min_order_size="0.0002", min_trade_increment="0.00001")
    broker = make_broker(fake)
    rules = broker.qty_rules("BTC/USD")
    assert (rules.min_qty, rules.step) == (0.0002, 0.00001)
    placed = broker.submit(entry("BTC/USD", qty=0.12345, stop_loss=None, take_profit=None))
    assert placed.qty == 0.12345
    assert broker.qty_rules("AAPL").step == 1.0
    asked = [r.path for r in fake.requests if r.path.startswith("/v2/assets/")]
    assert asked == ["/v2/assets/BTCUSD", "/v2/assets/AAPL"]  # one look-up each, cached
