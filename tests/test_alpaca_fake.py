"""The fake Alpaca refuses what Alpaca refuses: each test fails on the old, lenient fake."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from bot.bars import NS
from tests.fakes.alpaca import FakeAlpaca, FakeTradingStream

MONDAY = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)  # 10:00 in New York
H = {"APCA-API-KEY-ID": "test-key", "APCA-API-SECRET-KEY": "test-secret"}


@pytest.fixture
def fake():
    with FakeAlpaca() as server:
        server.clock.set(MONDAY)
        server.prices.update({"AAPL": 100.0, "BTC/USD": 50_000.0})
        yield server


def post(fake, **body):
    body.setdefault("time_in_force", "gtc")
    body.setdefault("type", "market")
    return requests.post(f"{fake.url}/v2/orders", json=body, headers=H, timeout=5)


def get(fake, path, **params):
    return requests.get(f"{fake.url}{path}", params=params, headers=H, timeout=5)


def bracket(fake, coid="b1", qty=10):
    """A market bracket for AAPL that rests until a test fills it (AAPL made illiquid)."""
    fake.illiquid.add("AAPL")
    answer = post(
        fake, symbol="AAPL", qty=qty, side="buy", client_order_id=coid, order_class="bracket",
        take_profit={"limit_price": 110, "client_order_id": "mine-tp"}, stop_loss={"stop_price": 95},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    return answer.json()


def statuses(fake, coid):
    """The statuses of a group as Alpaca answers them: {type: status}, through the parent."""
    top = fake.order(coid)
    answer = get(fake, f"/v2/orders/{top.id}", nested="true").json()
    return {answer["type"] + "*": answer["status"]} | {leg["type"]: leg["status"] for leg in answer["legs"]}


def test_a_filled_brackets_stop_leg_stays_held_and_only_its_parent_or_status_all_shows_it(fake):
    """Issue 17, section 1.1; the old fake turned both legs ``new`` and listed the stop as open."""
    bracket(fake)
    assert [o["client_order_id"] for o in get(fake, "/v2/orders", status="open", nested="true").json()] == [
        "b1"
    ]
    assert [o["client_order_id"] for o in get(fake, "/v2/orders", status="open", nested="false").json()] == [
        "b1"
    ]
    assert statuses(fake, "b1") == {"market*": "new", "limit": "held", "stop": "held"}
    fake.fill("b1", price=100)
    assert statuses(fake, "b1") == {"market*": "filled", "limit": "new", "stop": "held"}
    assert get(fake, "/v2/orders", status="open", nested="true").json() == []  # the parent is filled
    flat = get(fake, "/v2/orders", status="open", nested="false").json()
    assert [o["type"] for o in flat] == ["limit"]  # the held stop is not listed as open
    assert all(o["client_order_id"] != "mine-tp" for o in flat)  # leg ids are Alpaca's own
    closed = get(fake, "/v2/orders", status="closed", nested="false").json()
    assert {(o["type"], o["status"]) for o in closed} == {("market", "filled"), ("stop", "held")}
    (top,) = get(fake, "/v2/orders", status="all", nested="true").json()
    assert sorted((leg["type"], leg["status"]) for leg in top["legs"]) == [("limit", "new"), ("stop", "held")]
    by_id = get(fake, f"/v2/orders/{top['id']}").json()
    assert by_id["legs"] is None  # legs only with nested=true
    (position,) = get(fake, "/v2/positions").json()
    assert position["qty_available"] == "0"  # the group holds the shares


def test_an_ocos_stop_leg_is_held_too(fake):
    fake.add_position("AAPL", 10, 90.0)
    answer = post(
        fake, symbol="AAPL", qty=10, side="sell", type="limit", client_order_id="o1", order_class="oco",
        take_profit={"limit_price": 110}, stop_loss={"stop_price": 95},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert statuses(fake, "o1") == {"limit*": "new", "stop": "held"}
    assert [o["type"] for o in get(fake, "/v2/orders", status="open").json()] == ["limit"]


@pytest.mark.parametrize("replaced", [False, True])
def test_a_stop_that_fires_fills_and_replaces_the_target(fake, replaced):
    fake.stop_replacement = replaced
    stream = FakeTradingStream(fake)
    bracket(fake)
    fake.fill("b1", price=100)
    filled = fake.trigger_stop("AAPL", price=94.9)
    legs = {leg.type: leg for leg in fake.order("b1").legs}
    assert legs["limit"].status == "replaced" and legs["limit"].replaced_by == filled.id
    assert filled.status == "filled" and "AAPL" not in fake.positions
    if replaced:  # the stop through a replacement order of a new id
        assert legs["stop"].status == "replaced" and legs["stop"].replaced_by == filled.id
        assert filled.id != legs["stop"].id and filled.replaces == legs["stop"].id
    else:
        assert filled is legs["stop"]
    (row,) = [a for a in fake.activities if a["side"] == "sell"]
    assert row["order_id"] == filled.id and row["price"] == "94.9"
    events = [(m["data"]["event"], m["data"]["order"]["id"]) for m in stream.sent]
    assert ("fill", filled.id) in events and ("replaced", legs["limit"].id) in events
    stream.stop()


def test_a_target_fill_cancels_the_stop_without_a_trade_update(fake):
    stream = FakeTradingStream(fake)
    bracket(fake)
    fake.fill("b1", price=100)
    target = next(leg for leg in fake.order("b1").legs if leg.type == "limit")
    stop = next(leg for leg in fake.order("b1").legs if leg.type == "stop")
    fake.fill(target.client_order_id)
    assert stop.status == "canceled"
    assert [m["data"]["event"] for m in stream.sent if m["data"]["order"]["id"] == stop.id] == []
    stream.stop()


def test_canceling_any_order_of_a_group_cancels_the_rest_after_pending_cancel(fake):
    bracket(fake)
    fake.fill("b1", price=100)
    target = next(leg for leg in fake.order("b1").legs if leg.type == "limit")
    answer = requests.delete(f"{fake.url}/v2/orders/{target.id}", headers=H, timeout=5)
    assert answer.status_code == 204
    assert statuses(fake, "b1") == {"market*": "filled", "limit": "pending_cancel", "stop": "pending_cancel"}
    assert statuses(fake, "b1") == {"market*": "filled", "limit": "canceled", "stop": "canceled"}
    assert get(fake, "/v2/positions").json()[0]["qty_available"] == "10"


def test_pending_replace_refuses_a_cancel(fake):
    bracket(fake)
    fake.fill("b1", price=100)
    stop = next(leg for leg in fake.order("b1").legs if leg.type == "stop")
    fake.hold_replace(stop.client_order_id)
    answer = requests.delete(f"{fake.url}/v2/orders/{stop.id}", headers=H, timeout=5)
    assert answer.status_code == 422 and "pending_replace" in answer.json()["message"]
    fake.end_replace(stop.client_order_id)
    assert statuses(fake, "b1")["stop"] == "held"


def test_a_stop_can_fill_while_a_cancel_is_in_flight(fake):
    bracket(fake)
    fake.fill("b1", price=100)
    fake.stop_fires_on_cancel = True
    target = next(leg for leg in fake.order("b1").legs if leg.type == "limit")
    assert requests.delete(f"{fake.url}/v2/orders/{target.id}", headers=H, timeout=5).status_code == 204
    fake.settle()
    assert statuses(fake, "b1") == {"market*": "filled", "limit": "replaced", "stop": "filled"}
    assert "AAPL" not in fake.positions


def test_a_market_order_fills_inside_the_post_while_the_answer_says_new(fake):
    answer = post(fake, symbol="AAPL", qty=3, side="buy", client_order_id="m", time_in_force="day").json()
    assert answer["status"] == "new" and answer["filled_qty"] == "0"
    assert fake.order("m").status == "filled" and fake.positions["AAPL"].qty == 3
    fake.illiquid.add("MSFT")
    post(fake, symbol="MSFT", qty=1, side="buy", client_order_id="n", time_in_force="day")
    assert fake.order("n").status == "new"


def test_a_sell_beyond_the_position_opens_a_short_when_shorting_is_enabled(fake):
    assert get(fake, "/v2/account").json()["shorting_enabled"] is True
    answer = post(fake, symbol="AAPL", qty=5, side="sell", client_order_id="s1", time_in_force="day")
    assert answer.ok
    (position,) = get(fake, "/v2/positions").json()
    assert (position["qty"], position["side"]) == ("-5", "short")
    fake.add_position("MSFT", 3, 50.0)
    assert post(fake, symbol="MSFT", qty=5, side="sell", client_order_id="s2", time_in_force="day").ok
    assert fake.positions["MSFT"].qty == -2  # the harsher reading: the excess opens a short
    fake.flip_refused = True
    fake.add_position("MSFT", 3, 50.0)
    assert post(fake, symbol="MSFT", qty=5, side="sell", client_order_id="s3").status_code == 403
    fake.shorting_enabled = False
    assert post(fake, symbol="MSFT", qty=5, side="sell", client_order_id="s4").status_code == 403
    assert post(fake, symbol="IBM", qty=1, side="sell", client_order_id="s5").status_code == 403


@pytest.mark.parametrize("flag", ["trading_blocked", "trade_suspended_by_user", "account_blocked"])
def test_account_flags_refuse_submits_and_allow_cancels(fake, flag):
    bracket(fake)
    setattr(fake, flag, True)
    assert get(fake, "/v2/account").json()[flag] is True
    answer = post(fake, symbol="MSFT", qty=1, side="buy", client_order_id="x", time_in_force="day")
    assert answer.status_code == 403
    assert requests.delete(f"{fake.url}/v2/orders/{fake.order('b1').id}", headers=H, timeout=5).ok


def test_calculated_after_a_fill_and_done_for_day_at_the_close(fake):
    bracket(fake)
    fake.fill("b1", price=100)
    fake.illiquid.add("MSFT")
    assert post(fake, symbol="MSFT", qty=10, side="buy", client_order_id="b2").ok
    fake.fill("b2", price=100, qty=4)
    order_id = fake.order("b1").id
    assert get(fake, f"/v2/orders/{order_id}").json()["status"] == "filled"
    fake.clock.set(MONDAY + timedelta(hours=7))  # 17:00 in New York
    assert get(fake, f"/v2/orders/{order_id}").json()["status"] == "calculated"
    assert get(fake, f"/v2/orders/{fake.order('b2').id}").json()["status"] == "done_for_day"
    listed = {o["client_order_id"] for o in get(fake, "/v2/orders", status="open").json()}
    assert {"b1", "b2"} <= listed  # both read as open: neither can trade
    fake.clock.set(MONDAY + timedelta(days=1))
    assert get(fake, f"/v2/orders/{order_id}").json()["status"] == "filled"
    fake.calculated_now = True
    assert get(fake, f"/v2/orders/{order_id}").json()["status"] == "calculated"


def test_fail_next_answers_a_429_once_with_a_near_reset(fake):
    fake.fail_next("DELETE", "/v2/orders/", 429)
    answer = requests.delete(f"{fake.url}/v2/orders/nope", headers=H, timeout=5)
    assert answer.status_code == 429 and answer.headers["X-RateLimit-Remaining"] == "0"
    assert requests.delete(f"{fake.url}/v2/orders/nope", headers=H, timeout=5).status_code == 404


def test_open_sells_hold_the_quantity(fake):
    fake.add_position("AAPL", 10, 90.0)
    assert post(
        fake, symbol="AAPL", qty=6, side="sell", type="limit", limit_price=120, client_order_id="s1"
    ).ok
    (position,) = get(fake, "/v2/positions").json()
    assert position["qty_available"] == "4"
    answer = post(fake, symbol="AAPL", qty=6, side="sell", client_order_id="s2", time_in_force="day")
    assert answer.status_code == 403
    assert answer.json() == {
        "code": 40310000,
        "message": "insufficient qty available for order (requested: 6, available: 4)",
    }
    fake.add_position("BTC/USD", 0.5, 40_000.0)
    assert post(
        fake, symbol="BTC/USD", qty=0.5, side="sell", type="limit", limit_price=60_000, client_order_id="c1"
    ).ok
    answer = post(fake, symbol="BTC/USD", qty=0.5, side="sell", client_order_id="c2")
    assert answer.status_code == 403 and "insufficient balance for BTC" in answer.json()["message"]


def test_an_opposite_side_open_order_is_a_wash_trade(fake):
    fake.add_position("AAPL", 5, 90.0)
    assert post(
        fake, symbol="AAPL", qty=5, side="sell", type="limit", limit_price=120, client_order_id="s"
    ).ok
    answer = post(fake, symbol="AAPL", qty=1, side="buy", client_order_id="b", time_in_force="day")
    assert answer.status_code == 403
    assert answer.json() == {"code": 40310000, "message": "potential wash trade detected. use complex orders"}


def test_asset_rules(fake):
    fake.set_asset("BTC/USD", min_order_size="0.001", min_trade_increment="0.001", price_increment="1")
    assert post(fake, symbol="BTC/USD", qty=0.0005, side="buy", client_order_id="a").status_code == 422
    assert post(fake, symbol="BTC/USD", qty=0.0015, side="buy", client_order_id="b").status_code == 422
    limit = post(
        fake, symbol="BTC/USD", qty=0.002, side="buy", type="limit", limit_price=49_000.5, client_order_id="c"
    )
    assert limit.status_code == 422 and "price_increment" in limit.json()["message"]
    sub_penny = post(
        fake, symbol="AAPL", qty=1, side="buy", type="limit", limit_price=99.995, client_order_id="d"
    )
    assert sub_penny.status_code == 422 and "sub-penny" in sub_penny.json()["message"]
    assert post(
        fake, symbol="AAPL", qty=1, side="buy", type="limit", limit_price=0.9995, client_order_id="e"
    ).ok
    fractional = post(
        fake, symbol="AAPL", qty=2.5, side="buy", client_order_id="f", order_class="bracket",
        take_profit={"limit_price": 110}, stop_loss={"stop_price": 95},
    )  # fmt: skip
    assert fractional.status_code == 422


def test_client_order_ids_are_unique_forever_and_looked_up_by_404(fake):
    fake.add_position("AAPL", 5, 90.0)
    assert post(
        fake, symbol="AAPL", qty=5, side="sell", type="limit", limit_price=120, client_order_id="x"
    ).ok
    fake.cancel("x")
    again = post(fake, symbol="AAPL", qty=5, side="sell", type="limit", limit_price=120, client_order_id="x")
    assert again.status_code == 422 and again.json() == {
        "code": 40010001,
        "message": "client_order_id must be unique",
    }
    assert get(fake, "/v2/orders:by_client_order_id", client_order_id="nope").status_code == 404
    assert post(fake, symbol="AAPL", qty=1, side="sell", client_order_id="y" * 49).status_code == 422


def test_rate_limit_answers_429_with_the_reset_headers(fake):
    fake.rate_limit = 2
    answers = [get(fake, "/v2/account") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    last = answers[-1].headers
    assert last["X-RateLimit-Limit"] == "2" and last["X-RateLimit-Remaining"] == "0"
    assert int(last["X-RateLimit-Reset"]) % 60 == 0 and "Retry-After" not in last


def test_partial_fills_are_activities_of_their_own(fake):
    bracket(fake, qty=10)
    fake.fill("b1", price=100, qty=4)
    fake.fill("b1", price=101, qty=6)
    rows = get(fake, "/v2/account/activities/FILL", direction="asc").json()
    assert sorted((r["qty"], r["price"], r["cum_qty"], r["type"]) for r in rows) == [
        ("4", "100", "4", "partial_fill"),
        ("6", "101", "10", "fill"),
    ]
    assert rows[0]["transaction_time"] == rows[1]["transaction_time"]  # same millisecond: no fixed order


def test_crypto_daily_bars_start_at_midnight_central_and_the_forming_bar_is_served(fake):
    start = datetime(2026, 1, 4, 0, 0, tzinfo=UTC)
    fake.set_bars(
        "BTC/USD",
        [(int((start + timedelta(hours=h)).timestamp()) * NS, 1, 2, 0.5, 1.5, 1) for h in range(40)],
    )
    fake.clock.set(start + timedelta(hours=39, minutes=30))
    bars = get(fake, "/v1beta3/crypto/us/bars", symbols="BTC/USD", timeframe="1Day").json()["bars"]["BTC/USD"]
    assert [b["t"] for b in bars] == ["2026-01-03T06:00:00Z", "2026-01-04T06:00:00Z", "2026-01-05T06:00:00Z"]
    assert bars[-1]["v"] == 10  # 06:00 to 15:00 so far: still forming


def test_the_clock_is_settable_and_follows_the_calendar(fake):
    clock = get(fake, "/v2/clock").json()
    assert clock["is_open"] and clock["next_close"] == "2026-01-05T21:00:00.000000Z"
    fake.clock.set(datetime(2026, 1, 19, 15, 0, tzinfo=UTC))  # Martin Luther King Jr. Day
    clock = get(fake, "/v2/clock").json()
    assert not clock["is_open"] and clock["next_open"] == "2026-01-20T14:30:00.000000Z"
    order = post(fake, symbol="AAPL", qty=1, side="buy", client_order_id="w", time_in_force="day").json()
    assert order["status"] == "accepted" and order["filled_qty"] == "0"  # waits for the open
    fake.set_time(datetime(2026, 1, 20, 14, 31, tzinfo=UTC))
    assert fake.order("w").status == "filled"


def test_the_account_has_no_pattern_day_trader_fields(fake):
    account = get(fake, "/v2/account").json()
    assert not {"pattern_day_trader", "daytrade_count", "daytrading_buying_power"} & set(account)


# ------------------------------------------------------------------ crypto (tests/fakes/alpaca/crypto.py)


def test_a_crypto_buy_leaves_the_coins_less_the_fee_while_the_order_says_what_was_bought(fake):
    fake.illiquid.add("BTC/USD")  # filled by hand, at the price the test chooses
    cash = fake.cash
    assert post(fake, symbol="BTC/USD", qty=0.1, side="buy", client_order_id="c1").status_code == 200
    fake.fill("c1", price=50_000.0)
    assert get(fake, "/v2/orders:by_client_order_id", client_order_id="c1").json()["filled_qty"] == "0.1"
    (activity,) = get(fake, "/v2/account/activities/FILL").json()
    assert activity["qty"] == "0.1"
    (position,) = get(fake, "/v2/positions").json()
    assert (position["symbol"], position["qty"]) == ("BTCUSD", "0.09975")  # alpaca-py#374
    assert fake.cash == pytest.approx(cash - 5_000.0)  # the buy's fee is paid in coins


def test_a_crypto_sell_pays_its_fee_in_dollars_rounded_up_to_the_cent(fake):
    fake.illiquid.add("BTC/USD")  # filled by hand, at the price the test chooses
    fake.add_position("BTC/USD", 0.0997, 50_000.0)
    cash = fake.cash
    assert post(fake, symbol="BTC/USD", qty=0.0997, side="sell", client_order_id="s1").status_code == 200
    fake.fill("s1", price=50_001.0)  # 4,985.0997 of notional: a fee of 12.46274925, billed 12.47
    assert fake.cash == pytest.approx(cash + 4_985.0997 - 12.47)
    assert "BTC/USD" not in fake.positions


def test_crypto_fees_are_listed_as_cfee_activities_only_once_the_day_has_ended(fake):
    fake.illiquid.add("BTC/USD")  # filled by hand, at the price the test chooses
    post(fake, symbol="BTC/USD", qty=0.1, side="buy", client_order_id="c1")
    fake.fill("c1", price=50_000.0)
    post(fake, symbol="BTC/USD", qty=0.0997, side="sell", client_order_id="c2")
    fake.fill("c2", price=50_001.0)
    assert get(fake, "/v2/account/activities/CFEE").json() == []  # "posted end of day"
    fake.clock.set(MONDAY + timedelta(days=1))
    rows = get(fake, "/v2/account/activities", activity_types="CFEE").json()
    assert [(r["symbol"], r["qty"], r["net_amount"]) for r in rows] == [
        ("BTCUSD", "0", "-12.47"),
        ("BTCUSD", "-0.00025", "0"),
    ]
    assert all(r["date"] == "2026-01-05" and "order_id" not in r for r in rows)


def test_a_crypto_buy_is_held_to_the_non_marginable_buying_power(fake):
    fake.cash, fake.multiplier = 10_000.0, "2"
    account = get(fake, "/v2/account").json()
    assert (account["buying_power"], account["non_marginable_buying_power"]) == ("20000", "10000")
    refused = post(fake, symbol="BTC/USD", qty=0.3, side="buy", client_order_id="c1")  # 15,000
    assert refused.status_code == 403 and "insufficient balance for USD" in refused.json()["message"]
    assert post(fake, symbol="AAPL", qty=150, side="buy", client_order_id="a1", time_in_force="day").ok
    account = get(fake, "/v2/account").json()  # the open stock buy holds 15,000 of the cash
    assert account["non_marginable_buying_power"] == "0"
    assert post(fake, symbol="BTC/USD", qty=0.01, side="buy", client_order_id="c2").status_code == 403


@pytest.mark.parametrize("slash_404", [True, False])
def test_a_pair_is_found_by_its_compact_name_and_by_its_slashed_one_unless_switched_off(fake, slash_404):
    fake.slash_asset_404 = slash_404
    compact = get(fake, "/v2/assets/BTCUSD")
    assert compact.ok and (compact.json()["symbol"], compact.json()["class"]) == ("BTC/USD", "crypto")
    slashed = get(fake, "/v2/assets/BTC/USD")
    assert slashed.status_code == (404 if slash_404 else 200)
    assert get(fake, "/v2/assets/AAPL").json()["class"] == "us_equity"


def test_the_paper_trading_stream_sends_binary_frames(fake):
    """streaming.md: the paper trade_updates stream "uses binary frames" (alpaca-py reads both)."""
    import json

    from websockets.sync.client import connect

    from tests.fakes.alpaca import FakeTradingStream

    stream = FakeTradingStream(fake)
    with connect(f"ws://127.0.0.1:{stream.port}/stream") as ws:
        ws.send(
            json.dumps(
                {"action": "authenticate", "data": {"key_id": "test-key", "secret_key": "test-secret"}}
            )
        )
        answer = ws.recv(timeout=5)
        assert isinstance(answer, bytes) and json.loads(answer)["data"]["status"] == "authorized"
        ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        assert isinstance(ws.recv(timeout=5), bytes)
        fake.wait_for(lambda: stream.connected == 1, what="listening")
        post(fake, symbol="AAPL", qty=1, side="buy", client_order_id="f1", time_in_force="day")
        update = ws.recv(timeout=5)
        assert isinstance(update, bytes) and json.loads(update)["data"]["event"] == "new"
