"""Risk limits and sizing: each limit blocks what it should and lets through what it should."""

from __future__ import annotations

import math

import pytest

from bot.domain import Position
from bot.risk import (
    PortfolioState,
    RiskLimits,
    WorkingEntry,
    check_entry,
    position_size,
    protective_levels,
    round_price,
    round_qty,
)

LIMITS = RiskLimits()


def state(
    equity: float = 100_000, cash: float | None = None, positions=(), day_start=None, paused=False, working=()
):
    return PortfolioState(
        equity=equity,
        cash=equity if cash is None else cash,
        positions=tuple(positions),
        day_start_equity=day_start,
        paused=paused,
        working=tuple(w if isinstance(w, WorkingEntry) else WorkingEntry(w, 1, 100.0, 98.0) for w in working),
    )


def pos(symbol: str, qty: float, price: float, stop: float | None) -> Position:
    return Position(symbol=symbol, qty=qty, avg_price=price, market_price=price, stop_loss=stop)


def test_size_is_risk_over_stop_distance_when_the_position_cap_does_not_bind():
    # 2% of 100k = 2,000 at risk; a 10-dollar stop distance -> 200 shares = 20,000 < 20% cap (20,000)... equal:
    # use a wider stop so the risk formula binds: entry 100, stop 80 -> 2,000 / 20 = 100 shares.
    assert position_size(LIMITS, symbol="AAPL", equity=100_000, cash=100_000, entry=100, stop=80) == 100


def test_size_is_capped_at_max_position_pct():
    # stop 2% away: risk formula says 2,000 / 2 = 1,000 shares (100k), cap is 20% = 20,000 -> 200 shares
    assert position_size(LIMITS, symbol="AAPL", equity=100_000, cash=100_000, entry=100, stop=98) == 200


def test_size_is_capped_by_cash_and_rounded_down_to_whole_shares():
    assert position_size(LIMITS, symbol="AAPL", equity=100_000, cash=1_050, entry=100, stop=98) == 10


def test_crypto_size_is_fractional():
    qty = position_size(LIMITS, symbol="BTC/USD", equity=100_000, cash=100_000, entry=60_000, stop=58_800)
    assert qty == pytest.approx(20_000 / 60_000, abs=1e-6)
    assert qty <= 20_000 / 60_000  # rounded down, never up
    assert qty != round(qty)


def test_round_qty_and_price():
    assert round_qty("AAPL", 9.999) == 9
    assert round_qty("AAPL", -1) == 0
    assert round_qty("BTC/USD", math.nan) == 0
    assert round_price(123.4567) == 123.46
    assert round_price(0.123456) == 0.1235


def test_protective_levels_follow_the_percentages():
    stop, target = protective_levels(LIMITS, 200.0)
    assert (stop, target) == (196.0, 208.0)


def test_an_ordinary_entry_is_approved():
    decision = check_entry(LIMITS, state(), symbol="AAPL", qty=100, entry=100, stop=98)
    assert decision.approved, decision.reason


def test_paused_blocks_entries():
    decision = check_entry(LIMITS, state(paused=True), symbol="AAPL", qty=1, entry=100, stop=98)
    assert not decision.approved and "paused" in decision.reason


def test_max_open_trades_counts_positions_and_working_entries():
    held = [pos(f"S{i}", 1, 10, 9.8) for i in range(4)]
    assert check_entry(LIMITS, state(positions=held), symbol="NEW", qty=1, entry=100, stop=98).approved
    decision = check_entry(
        LIMITS, state(positions=held, working=["W"]), symbol="NEW", qty=1, entry=100, stop=98
    )
    assert not decision.approved and "max open trades" in decision.reason


def test_same_symbol_twice_is_blocked():
    decision = check_entry(
        LIMITS, state(positions=[pos("AAPL", 1, 100, 98)]), symbol="AAPL", qty=1, entry=100, stop=98
    )
    assert not decision.approved and "already" in decision.reason


def test_position_value_above_cap_is_blocked():
    decision = check_entry(LIMITS, state(), symbol="AAPL", qty=201, entry=100, stop=98)
    assert not decision.approved and "exceeds 20% of equity" in decision.reason


def test_not_enough_cash_is_blocked():
    decision = check_entry(LIMITS, state(cash=5_000), symbol="AAPL", qty=100, entry=100, stop=98)
    assert not decision.approved and "not enough cash" in decision.reason


def test_portfolio_risk_limit():
    # open risk: 5,000 (two positions 2,500 each to their stops) = 5% of 100k
    held = [pos("A", 250, 100, 90), pos("B", 250, 100, 90)]
    ok = check_entry(LIMITS, state(positions=held), symbol="C", qty=100, entry=100, stop=92)  # +800 -> 5.8%
    assert ok.approved, ok.reason
    blocked = check_entry(
        LIMITS, state(positions=held), symbol="C", qty=100, entry=100, stop=88
    )  # +1,200 -> 6.2%
    assert not blocked.approved and "portfolio risk would be 6.20%" in blocked.reason


def test_daily_loss_limit_blocks_after_the_limit_and_not_before():
    just_under = state(equity=95_100, day_start=100_000)
    assert check_entry(LIMITS, just_under, symbol="AAPL", qty=10, entry=100, stop=98).approved
    at_limit = state(equity=95_000, day_start=100_000)
    decision = check_entry(LIMITS, at_limit, symbol="AAPL", qty=10, entry=100, stop=98)
    assert not decision.approved and "daily loss limit" in decision.reason


def test_zero_quantity_is_blocked_with_a_reason():
    decision = check_entry(LIMITS, state(), symbol="AAPL", qty=0, entry=100, stop=98)
    assert not decision.approved and "rounds to zero" in decision.reason


def test_limits_can_change_only_within_bounds():
    assert LIMITS.with_value("MAX_OPEN_TRADES", 3).max_open_trades == 3
    with pytest.raises(ValueError, match="between"):
        LIMITS.with_value("risk_per_trade_pct", 50)
    with pytest.raises(ValueError, match="unknown limit"):
        LIMITS.with_value("leverage", 2)
    with pytest.raises(ValueError, match="whole number"):
        LIMITS.with_value("max_open_trades", 2.5)


def test_a_working_entry_without_a_price_blocks_entries_with_the_reason():
    unpriced = WorkingEntry("W", 10, math.nan, 98.0)
    decision = check_entry(LIMITS, state(working=[unpriced]), symbol="NEW", qty=1, entry=100, stop=98)
    assert not decision.approved
    assert decision.reason.startswith(
        "no price for the working entry order of W: cannot tell what it commits"
    )
