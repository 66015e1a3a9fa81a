"""Every share protected at Alpaca (issue 17): the service and the commands on alpaca-py's real
clients against the strict fake, where a filled bracket's stop leg waits in ``held``, market
orders fill inside the POST, cancels take a while, a stop can fire while an exit's cancel is in
flight, and the account may short.

Each test names the fix it holds; each failed before it. ``at_alpaca`` reads the fake's own state,
not the bot's: the invariant is checked at the broker.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bot.commands import Caller, CommandRouter
from bot.domain import CoverState, EventKind, Side
from bot.plugins import Registry
from tests.alpaca_world import AlpacaWorld
from tests.fakes.alpaca import FakeAlpaca, trading

MONDAY = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)  # 10:00 in New York: the market is open
STOP, TARGET = 98.0, 104.0  # a manual buy at 100 under the default risk limits


@pytest.fixture
def world(db):
    with FakeAlpaca() as fake:
        fake.prices.update({"AAPL": 100.0, "MSFT": 50.0, "BTC/USD": 50_000.0})
        yield AlpacaWorld(fake, db, MONDAY)


def ann(world: AlpacaWorld, message_id: int) -> Caller:
    return Caller(
        "console", chat_id=1, user_id=7, name="ann", sent_at=world.clock.now(), message_id=message_id
    )


def command(world: AlpacaWorld, text: str, message_id: int) -> str:
    """What a trader sees for ``text``, confirmed when it asks."""
    commands = CommandRouter(world.service, Registry(), world.clock)
    reply = commands.handle(text, ann(world, message_id))
    if reply.confirmation is None:
        return reply.text
    return commands.confirm(reply.confirmation.token, ann(world, message_id)).text


def at_alpaca(fake: FakeAlpaca, symbol: str = "AAPL") -> list[tuple[Any, ...]]:
    """The live sell orders on ``symbol`` at the fake: (class, type, qty, price, status)."""
    return sorted(
        (o.order_class, o.type, o.remaining, o.stop_price or o.limit_price, o.status)
        for o in fake.all_orders()
        if o.symbol == symbol and o.side == "sell" and o.is_live
    )


def assert_invariant(fake: FakeAlpaca) -> None:
    """Read at the fake: every position long, with live stops for every whole share, never more."""
    fake.settle()
    for symbol, position in fake.positions.items():
        assert position.qty > 0, f"{symbol} is short {position.qty} at Alpaca"
        stops = sum(o.remaining for o in fake.all_orders() if o.symbol == symbol and o.is_stop and o.is_live)
        assert int(position.qty) <= stops + 1e-9 <= position.qty + 1e-9, (symbol, position.qty, stops)


def sells(fake: FakeAlpaca, symbol: str = "AAPL") -> list[tuple[str, str]]:
    """Every sell execution of ``symbol``: (quantity, order type)."""
    types = {o.id: o.type for o in fake.all_orders()}
    return [
        (a["qty"], types[a["order_id"]])
        for a in fake.activities
        if a["symbol"] == symbol and a["side"] == "sell"
    ]


def buy(world: AlpacaWorld, qty: float, message_id: int = 1, symbol: str = "AAPL") -> None:
    text = command(world, f"/buy {symbol} {qty}", message_id)
    assert text.startswith("Done: Bought"), text  # a liquid market order fills inside the POST


# --------------------------------------------------------------------------- partial sells


def test_a_partial_sell_keeps_a_stop_and_target_for_what_was_held_less_what_it_sold(world):
    """Before: the remainder was read after the sell had filled (156 - 78 read as 78 - 78 = 0)."""
    buy(world, 156)
    assert command(world, "/sell AAPL 78", 2) == "Done: Sold 78 AAPL at 100.00"
    assert at_alpaca(world.fake) == [("oco", "limit", 78, TARGET, "new"), ("oco", "stop", 78, STOP, "held")]
    assert_invariant(world.fake)
    (cover,) = world.service.protection()
    assert (cover.state, cover.qty, cover.covered, cover.stop) == (CoverState.PROTECTED, 78, 78, STOP)


# --------------------------------------------------------------------------- refused exits


def test_a_refused_exit_puts_the_stop_back_not_only_the_target(world):
    """Before: the held stop leg was never seen, so only the target came back ("stop None")."""
    buy(world, 10)
    world.fake.fail_next("POST", "/v2/orders", 403)  # e.g. trading halted for the asset meanwhile
    text = command(world, "/sell AAPL all", 2)
    assert text.startswith("Rejected by the broker:"), text
    assert f"AAPL's stop {STOP} and target {TARGET} were put back at Alpaca for 10 shares" in text
    assert at_alpaca(world.fake) == [("oco", "limit", 10, TARGET, "new"), ("oco", "stop", 10, STOP, "held")]
    assert_invariant(world.fake)


@pytest.mark.parametrize("step", ["cancel", "sell"])
def test_a_429_half_way_through_a_sell_puts_back_what_it_canceled_says_so_and_alerts(world, step):
    """Before: a 429 on the cancel left the legs canceled and the reply said "nothing was changed";
    on the sell, the stop was not put back."""
    buy(world, 10)
    if step == "cancel":
        world.fake.cancel_latency = 0  # the first DELETE went through: the group is canceled
        world.fake.on_cancel = lambda order: world.fake.fail_next("DELETE", "/v2/orders/", 429)
    else:
        world.fake.fail_next("POST", "/v2/orders", 429)
    text = command(world, "/sell AAPL all", 2)
    assert "Nothing was changed" not in text and "nothing was changed" not in text
    assert "rate limit" in text and "put back at Alpaca for 10 shares" in text, text
    assert_invariant(world.fake)
    alerts = [e for e in world.service.recent_events(20) if e.kind is EventKind.ORDER_FAILED]
    assert alerts and "put back" in alerts[0].message


def test_a_429_half_way_through_flatten_closes_the_rest_and_says_what_was_and_was_not_done(world):
    buy(world, 10)
    buy(world, 20, message_id=2, symbol="MSFT")
    world.fake.fail_next("POST", "/v2/orders", 429)  # the first exit's sell is refused
    text = command(world, "/flatten", 3)
    lines = text.splitlines()
    assert lines[0] == "Flatten:"
    failed = [line for line in lines if line.startswith("Failed")]
    done = [line for line in lines if line.startswith("Done")]
    assert len(failed) == 1 and "put back at Alpaca" in failed[0], text
    assert len(done) == 1, text
    assert len(world.fake.positions) == 1  # one closed, the other still held ...
    assert_invariant(world.fake)  # ... and protected
    assert [e for e in world.service.recent_events(20) if e.kind is EventKind.ORDER_FAILED]


# --------------------------------------------------------------------------- the race


@pytest.mark.parametrize("replacement", [False, True], ids=["stop-fills", "stop-replaced"])
@pytest.mark.parametrize("exit_command", ["/sell AAPL all", "/flatten"])
def test_a_stop_that_fills_while_the_exits_cancel_is_in_flight_is_never_sold_twice(
    world, exit_command, replacement
):
    """Before: the exit sold the whole position a second time: a naked short."""
    buy(world, 10)
    world.fake.stop_replacement = replacement
    world.fake.stop_fires_on_cancel = True
    text = command(world, exit_command, 2)
    assert "its stop-loss sold 10 first" in text and "nothing is left to sell" in text, text
    assert "AAPL" not in world.fake.positions  # flat: no short
    assert len(sells(world.fake)) == 1  # the stop's, once
    world.service.sync()
    assert world.position("AAPL") is None
    (trade,) = world.trades()
    assert (trade.qty, trade.exit_reason) == (10, "stop_loss")


def test_the_exit_sells_only_what_the_stop_left(world):
    """A stop that filled part of the position while the exit's cancel was in flight."""
    buy(world, 10)

    def part_fires(order: Any) -> None:
        world.fake.on_cancel = None  # once
        stop = next(o for o in order.family() if o.is_stop)
        world.fake.execute(stop, STOP, 4)

    world.fake.on_cancel = part_fires
    text = command(world, "/sell AAPL all", 2)
    assert text.startswith("Done: Sold 6 AAPL"), text
    assert "AAPL" not in world.fake.positions
    assert sorted(sells(world.fake)) == [("4", "stop"), ("6", "market")]


def test_release_timing_out_on_a_pending_replace_leaves_the_protection_in_place(world):
    buy(world, 10)
    world.broker.protection.cancel_wait = 0.3  # seconds the bot waits for Alpaca (5 s in a real run)
    stop = next(o for o in world.fake.all_orders() if o.is_stop)
    world.fake.hold_replace(stop.client_order_id)
    text = command(world, "/sell AAPL all", 2)
    assert "pending_replace" in text and "nothing was canceled" in text, text
    world.fake.end_replace(stop.client_order_id)
    assert at_alpaca(world.fake) == [
        ("bracket", "limit", 10, TARGET, "new"),
        ("bracket", "stop", 10, STOP, "held"),
    ]
    assert_invariant(world.fake)


def test_a_cancel_that_never_completes_puts_the_stop_back_once_alpaca_lets_go(world):
    """release() timing out after it canceled: what it canceled comes back (at once, or at the next
    cycle once Alpaca has let go of the shares)."""
    buy(world, 10)
    world.broker.protection.cancel_wait = 0.3  # seconds the bot waits for Alpaca (5 s in a real run)
    world.fake.cancel_latency = 10_000  # the cancel hangs in pending_cancel
    text = command(world, "/sell AAPL all", 2)
    assert "still being canceled" in text and "exit not sent" in text, text
    world.fake.settle()  # Alpaca completes the cancel later
    world.service.sync()  # the next cycle: the invariant is checked at Alpaca and repaired
    assert at_alpaca(world.fake) == [("oco", "limit", 10, TARGET, "new"), ("oco", "stop", 10, STOP, "held")]
    assert_invariant(world.fake)


# --------------------------------------------------------------------------- reconciliation


def test_reconciliation_leaves_a_working_brackets_part_to_its_own_legs(world):
    """Before: an OCO on the part held, then the entry's own legs came alive too: stops for 14 on 10."""
    world.fake.illiquid.add("AAPL")
    world.service.place_manual("AAPL", Side.BUY, 14, "msg-1")
    entry = world.fake.top_orders()[0]
    world.fake.fill(entry.client_order_id, price=100.0, qty=10)
    assert world.service.reconcile() == [] or all("put back" not in d for d in world.service.reconcile())
    assert [o for o in world.fake.all_orders() if o.order_class == "oco"] == []
    world.fake.fill(entry.client_order_id, price=100.0)
    world.service.sync()
    assert_invariant(world.fake)
    assert at_alpaca(world.fake) == [
        ("bracket", "limit", 14, TARGET, "new"),
        ("bracket", "stop", 14, STOP, "held"),
    ]


def test_a_position_can_always_be_protected_again_and_an_old_order_never_counts(world):
    """Before: ids from symbol, levels and quantity only: an old filled order under the same id
    counted as "put back", and after three re-protections no id was left."""
    buy(world, 10)
    for _ in range(4):  # the legs canceled by hand, again and again
        stop = next(o for o in world.fake.all_orders() if o.is_stop and o.is_live)
        world.fake.cancel(stop.client_order_id)
        world.service.reconcile()
        assert_invariant(world.fake)
    # a target fills, the position closes; a new one with the same levels loses its legs
    target = next(o for o in world.fake.all_orders() if o.type == "limit" and o.is_live)
    world.fake.fill(target.client_order_id, price=TARGET)
    world.service.sync()
    buy(world, 10, message_id=9)
    world.fake.cancel(next(o for o in world.fake.all_orders() if o.is_stop and o.is_live).client_order_id)
    world.service.reconcile()
    assert_invariant(world.fake)


# --------------------------------------------------------------------------- shorts


def test_flatten_closes_a_short_and_a_buy_can_cover_one(world):
    """Before: /flatten skipped a short, and /buy to cover it was refused by the entry risk check."""
    world.fake.add_position("AAPL", -30, 100.0)
    world.fake.add_position("MSFT", -5, 50.0)
    diffs = world.service.reconcile()
    assert any("SHORT" in d and "/buy AAPL 30" in d for d in diffs), diffs
    text = command(world, "/buy MSFT 5", 1)
    assert text.startswith("Done: Bought 5 MSFT"), text
    assert command(world, "/sell AAPL 5", 2).startswith("Not sold: AAPL is held SHORT (30)")
    text = command(world, "/flatten", 3)
    assert "Bought 30 AAPL" in text, text
    assert world.fake.positions == {}
    world.service.sync()
    assert world.service.positions() == []


# --------------------------------------------------------------------------- account flags


@pytest.mark.parametrize("flag", ["trading_blocked", "trade_suspended_by_user"])
def test_a_blocked_account_refuses_the_exit_in_one_line_and_leaves_the_stops_alone(world, flag):
    """Before: every exit canceled every stop, then Alpaca refused the sell, and nothing put them back."""
    buy(world, 10)
    before = at_alpaca(world.fake)
    setattr(world.fake, flag, True)
    world.restart()  # the account is cached for 3 s: a new process reads it at once
    text = command(world, "/sell AAPL all", 2)
    assert "\n" not in text and flag in text and "stay at Alpaca" in text, text
    assert world.fake.requests_to("DELETE", "/v2/orders") == [] and not any(
        r.method == "DELETE" for r in world.fake.requests
    )
    assert at_alpaca(world.fake) == before
    assert_invariant(world.fake)


# --------------------------------------------------------------------------- calculated


def test_a_filled_order_that_reads_calculated_is_never_open_again(world):
    """Before: ``calculated`` read as open: the filled entry looked like a working buy, and the exit
    was refused as a wash trade."""
    buy(world, 10)
    world.fake.calculated_now = True
    world.service.reconcile()
    assert world.service.orders(open_only=True) == []
    assert command(world, "/sell AAPL all", 2).startswith("Done: Sold 10 AAPL")


# --------------------------------------------------------------------------- crypto


def test_crypto_stops_and_exits_are_floored_to_the_increment_after_the_fee(world):
    """The fee comes out of the coins: Alpaca holds 0.09975 of a 0.1 buy. Before: the stop and the
    exit asked for 0.09975, off the pair's 0.0001 grid, and Alpaca refused both."""
    world.fake.illiquid.add("BTC/USD")
    world.service.place_manual("BTC/USD", Side.BUY, 0.1, "msg-1")
    entry = world.fake.top_orders()[0]
    world.fake.fill(entry.client_order_id, price=50_000.0)
    assert world.fake.positions["BTC/USD"].qty == pytest.approx(0.09975)  # what the 25 bps fee left
    world.fake.illiquid.clear()
    world.service.sync()
    (stop,) = [o for o in world.fake.all_orders() if o.is_stop and o.is_live]
    assert stop.qty == pytest.approx(0.0997)
    (cover,) = world.service.protection()
    assert cover.ok and "0.00005 too small for a stop" in cover.note, cover
    text = command(world, "/sell BTC/USD all", 2)
    assert text.startswith("Done: Sold 0.0997 BTC/USD"), text
    assert world.fake.positions["BTC/USD"].qty == pytest.approx(0.00005)


def test_a_partial_crypto_sell_keeps_a_stop_and_the_target_watch_for_the_rest(world):
    """Before: the rest had no stop and no target watch across cycles, while /positions showed one."""
    buy(world, 0.1, symbol="BTC/USD")
    assert command(world, "/sell BTC/USD 0.04", 2).startswith("Done: Sold 0.04 BTC/USD")
    world.service.sync()
    (stop,) = [o for o in world.fake.all_orders() if o.is_stop and o.is_live]
    assert stop.qty == pytest.approx(0.0597)  # 0.09975 held after the fee, less 0.04, on the grid
    world.fake.prices["BTC/USD"] = 60_000.0  # far above the target: the guard takes profit
    world.broker.venue.clear()
    world.service.sync()
    assert world.fake.positions["BTC/USD"].qty == pytest.approx(0.00005)  # sold all but the fee's dust


def test_a_crypto_take_profit_that_fails_puts_the_stop_back_and_tries_again_under_a_new_id(world):
    """Before: one failed market exit left the coin without a stop, and its id was spent."""
    buy(world, 0.1, symbol="BTC/USD")
    world.service.sync()
    world.fake.prices["BTC/USD"] = 60_000.0
    world.broker.venue.clear()
    world.fake.fail_next("POST", "/v2/orders", 403)  # the market exit is refused
    world.service.sync()
    assert len([o for o in world.fake.all_orders() if o.is_stop and o.is_live]) == 1  # back at once
    assert world.fake.positions["BTC/USD"].qty == pytest.approx(0.09975)  # nothing sold
    world.broker.venue.clear()
    world.service.sync()  # the target is still reached: a new attempt, under an id of its own
    assert world.fake.positions["BTC/USD"].qty == pytest.approx(0.00005)  # sold all but the fee's dust
    exits = [
        o
        for o in world.fake.all_orders()
        if o.symbol == "BTC/USD" and o.type == "market" and o.side == "sell"
    ]
    assert [o.status for o in exits] == ["filled"]
    tried = [
        r.body["client_order_id"]
        for r in world.fake.requests_to("POST", "/v2/orders")
        if r.body.get("type") == "market" and r.body["side"] == "sell"
    ]
    assert len(tried) == 2 and len(set(tried)) == 2


# --------------------------------------------------------------------------- emergency exit


@pytest.mark.parametrize("emergency", [True, False])
def test_a_stop_that_cannot_be_placed_is_followed_by_an_emergency_exit_when_asked(world, emergency):
    world.broker.protection.emergency_exit = emergency
    buy(world, 10)
    world.fake.cancel(next(o for o in world.fake.all_orders() if o.is_stop).client_order_id)  # by hand
    world.fake.fail_before_accept = [503] * 4  # every try of putting the stop back fails
    world.service.sync()
    alerts = [e.message for e in world.service.recent_events(20) if e.kind is EventKind.PROTECTION]
    if emergency:
        assert "AAPL" not in world.fake.positions
        assert any("EMERGENCY_EXIT sold 10 at market" in a for a in alerts), alerts
    else:
        assert world.fake.positions["AAPL"].qty == 10
        assert any("NO stop" in a and "EMERGENCY_EXIT is off" in a for a in alerts), alerts


def test_the_books_follow_a_sell_beyond_the_position_into_a_short_and_its_cover(world):
    """Before: a sell beyond the position was dropped from the books ("no position on record") and
    the next reconciliation called the short "placed outside the bot?"; a buy covering it crashed."""
    buy(world, 10)
    for order in list(world.fake.all_orders()):  # someone clears the stops and sells 15 by hand
        if order.is_live:
            world.fake.cancel(order.client_order_id)
    with world.fake.lock:
        status, _ = trading.submit(
            world.fake,
            {
                "symbol": "AAPL",
                "qty": "15",
                "side": "sell",
                "type": "market",
                "time_in_force": "day",
                "client_order_id": "by-hand",
            },
        )
    assert status == 200 and world.fake.positions["AAPL"].qty == -5
    world.service.sync()
    assert world.position("AAPL").qty == -5
    alerts = [e.message for e in world.service.recent_events(20) if e.kind is EventKind.PROTECTION]
    assert any("AAPL is SHORT 5 at the broker" in a and "/buy AAPL 5" in a for a in alerts), alerts
    world.fake.prices["AAPL"] = 90.0
    assert "Bought 5 AAPL" in command(world, "/flatten", 2)
    assert world.position("AAPL") is None and world.fake.positions == {}
    short_trade = next(t for t in world.trades() if t.entry_price == 100.0 and t.exit_price == 90.0)
    assert short_trade.qty == 5 and short_trade.pnl == pytest.approx(50.0)  # sold at 100, bought at 90
