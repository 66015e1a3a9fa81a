"""The broker's own quantity rules (``Broker.qty_rules``), checked before a trader is asked.

Alpaca's crypto pairs have a smallest order (``min_order_size``) and an increment
(``min_trade_increment``); the strict fake Alpaca server (``tests/fakes/alpaca``) refuses what the
real one refuses. The service used to check manual orders against its own generic grid
(0.000001 for crypto), so a /buy Alpaca would refuse was asked about and sent, and a crypto
remainder below the minimum made every /flatten send an order Alpaca refused. The simulated
exchange keeps its own rules.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.commands import Caller, CommandRouter
from bot.domain import OutcomeStatus, Side
from bot.plugins import Registry
from bot.risk import QtyRules
from tests.alpaca_world import AlpacaWorld
from tests.fakes.alpaca import FakeAlpaca
from tests.helpers import make_app

MONDAY = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


@pytest.fixture
def world(db):
    with FakeAlpaca() as fake:
        fake.prices.update({"AAPL": 100.0, "BTC/USD": 50_000.0})
        yield AlpacaWorld(fake, db, MONDAY)


def ann(world: AlpacaWorld, message_id: int) -> Caller:
    return Caller(
        "console", chat_id=1, user_id=7, name="ann", sent_at=world.clock.now(), message_id=message_id
    )


def test_alpaca_exposes_the_pairs_rules_and_the_simulator_its_own(world, tmp_path):
    assert world.broker.qty_rules("BTC/USD") == QtyRules(0.0001, 0.0001, sells_any_remainder=False)
    assert world.broker.qty_rules("AAPL") == QtyRules(1.0, 1.0, sells_any_remainder=True)
    world.fake.set_asset("ETH/USD", min_order_size="0.001", min_trade_increment="0.0005")
    assert world.broker.qty_rules("ETH/USD") == QtyRules(0.001, 0.0005, sells_any_remainder=False)
    app, _ = make_app(tmp_path / "sim.db")
    assert app.broker.qty_rules("BTC/USD") == QtyRules(0.000001, 0.000001, sells_any_remainder=True)


def test_a_manual_crypto_order_off_alpacas_grid_is_refused_before_the_question(world):
    commands = CommandRouter(world.service, Registry(), world.clock)
    below = commands.handle("/buy BTC/USD 0.00005", ann(world, 1))
    assert below.confirmation is None
    assert below.text == "Not bought: 0.00005 BTC/USD is below the smallest order (0.0001 BTC)."
    off_grid = commands.handle("/buy BTC/USD 0.00015", ann(world, 2))
    assert off_grid.text == "Not bought: 0.00015 BTC/USD is not a multiple of 0.0001 BTC."
    assert world.fake.top_orders() == []  # nothing reached Alpaca
    fine = commands.handle("/buy BTC/USD 0.0002", ann(world, 3))
    assert fine.confirmation is not None and fine.text.startswith("Confirm: buy 0.0002 BTC/USD at market?")
    done = commands.confirm(fine.confirmation.token, ann(world, 3))
    assert done.text == "Done: Bought 0.0002 BTC/USD at 50,000.00", done.text  # filled inside the POST
    assert [(o.side, o.qty) for o in world.fake.top_orders() if o.type == "market"] == [("buy", 0.0002)]


def test_flatten_reports_a_remainder_below_the_minimum_as_dust_instead_of_sending_it(world):
    world.fake.add_position("BTC/USD", 0.00025, 40_000.0, current=50_000.0)
    world.fake.add_position("AAPL", 3, 90.0)
    world.service.reconcile()  # adopted as placed outside the bot
    first = {o.symbol: o for o in world.service.flatten("flatten-1", by="ann")}
    assert first["AAPL"].status in (OutcomeStatus.PLACED, OutcomeStatus.FILLED)
    btc = first["BTC/USD"]
    assert btc.status in (OutcomeStatus.PLACED, OutcomeStatus.FILLED), btc.message
    sent = [o for o in world.fake.top_orders() if o.symbol == "BTC/USD"]
    assert [o.qty for o in sent] == [0.0002]  # Alpaca's grid: 0.00005 stays behind
    world.service.sync()  # both filled inside their POSTs
    [left] = world.service.positions()
    assert left.symbol == "BTC/USD" and left.qty == pytest.approx(0.00005)

    orders_before = len(world.fake.top_orders())
    [dust] = world.service.flatten("flatten-2", by="ann")
    assert dust.status is OutcomeStatus.IGNORED and dust.order is None
    assert dust.message == (
        "0.00005 BTC/USD is dust, below the broker's smallest order (0.0001): it cannot be sold and is left as it is"
    )
    assert len(world.fake.top_orders()) == orders_before  # no order Alpaca would refuse
    refused = world.service.preview_manual("BTC/USD", Side.SELL, None, "sell-all")
    assert refused is not None and refused.message == (
        "0.00005 BTC/USD is dust: below the broker's smallest order (0.0001 BTC), so it cannot be sold"
    )
