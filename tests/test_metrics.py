"""bot.metrics: the in-place arithmetic gives bit for bit what the plain formulas give.

The references below are the formulas as first written (one temporary array per step); the
module computes the same values in fewer arrays, and every sweep ranks by them, so they must
not move by one ulp.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from bot import metrics


def _returns_reference(values: np.ndarray) -> np.ndarray:
    if len(values) < 2:
        return np.empty(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.diff(values) / values[:-1]
    return out[np.isfinite(out)]


def _max_drawdown_reference(values: np.ndarray) -> float:
    if len(values) == 0:
        return 0.0
    peak = np.maximum.accumulate(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, (peak - values) / peak * 100.0, 0.0)
    return float(dd.max())


def _sortino_reference(r: np.ndarray, per_year: float) -> float:
    if len(r) < 2:
        return 0.0
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    return 0.0 if downside == 0.0 else float(np.mean(r)) / downside * math.sqrt(per_year)


def _curve(seed: int, n: int) -> np.ndarray:
    """An equity curve like a backtest's: flat while out of the market, a random walk in it."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0, 0.002, n) * (rng.random(n) < 0.5)
    return 10_000 * np.exp(np.cumsum(steps))


CURVES = {
    "backtest-like": _curve(1, 50_000),
    "another": _curve(2, 7_777),
    "flat": np.full(1_000, 10_000.0),
    "one point": np.array([10_000.0]),
    "two points": np.array([10_000.0, 9_000.0]),
    "empty": np.empty(0),
    "through zero": np.array([100.0, 50.0, 0.0, 20.0, 10.0]),
    "starts at zero": np.array([0.0, 0.0, 5.0, 4.0]),
    "negative": np.array([-5.0, -3.0, -4.0, 2.0, 1.0]),
    "a NaN": np.array([100.0, 110.0, np.nan, 90.0, 120.0]),
    "NaN first": np.array([np.nan, 100.0, 90.0]),
    "infinite": np.array([100.0, np.inf, 90.0, np.inf]),
}


@pytest.mark.parametrize("name", list(CURVES))
def test_returns_and_drawdown_are_the_plain_formulas_bit_for_bit(name):
    values = CURVES[name]
    r = metrics.returns(values)
    expected = _returns_reference(values)
    assert r.dtype == np.float64
    assert r.tobytes() == expected.tobytes()
    got, want = metrics.max_drawdown_pct(values), _max_drawdown_reference(values)
    assert got == want or (math.isnan(got) and math.isnan(want))
    assert metrics.sortino_of_returns(r, 525_600) == _sortino_reference(expected, 525_600)


def test_returns_does_not_hand_back_a_view_of_the_curve():
    values = CURVES["backtest-like"].copy()
    r = metrics.returns(values)
    r[:] = 0.0
    assert values.tobytes() == CURVES["backtest-like"].tobytes()


def test_drawdown_of_a_known_curve():
    assert metrics.max_drawdown_pct([100.0, 120.0, 90.0, 130.0, 117.0]) == pytest.approx(25.0)


def _profit_factor_reference(pnls: list[float]) -> float:
    gains = sum(p for p in pnls if p > 0)
    losses = -sum(p for p in pnls if p < 0)
    if losses == 0:
        return math.inf if gains > 0 else 0.0
    return gains / losses


@pytest.mark.parametrize(
    "pnls",
    [
        [],
        [0.0],
        [5.0, 0.0],
        [-1.0, -2.5],
        [0.1, 0.2, -0.3, 1e-17, -1e-17, 3.3],
        [1.0, float("nan"), -2.0],
        np.random.default_rng(7).normal(0, 50, 4_000).tolist(),
    ],
    ids=lambda p: f"{len(p)} trades",
)
def test_win_rate_and_profit_factor_are_the_plain_loops_bit_for_bit(pnls):
    for given in (pnls, np.asarray(pnls, dtype=np.float64)):
        assert metrics.profit_factor(given) == _profit_factor_reference(pnls)
        expected = 100.0 * sum(1 for p in pnls if p > 0) / len(pnls) if pnls else 0.0
        assert metrics.win_rate(given) == expected
