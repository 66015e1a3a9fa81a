"""Supertrend against values worked out by hand from TradingView's definition, the C kernel
against the Python reference, and the strategy's signals and parameters."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bot import kernels
from bot.bars import Bars
from bot.plugins import load_registry
from bot.strategy import StrategyError
from plugins.supertrend import SupertrendStrategy, flips, supertrend, supertrend_arrays

NAN = math.nan

# 15 bars (high, low, close): up, down, up, down. Period 3, multiplier 1.0.
ROWS = [
    (11, 9, 10),
    (12, 10, 11),
    (13, 11, 12),
    (14, 12, 13.5),
    (15, 13, 14.5),
    (14, 12, 12.5),
    (13, 11, 11.5),
    (12, 10, 10.5),
    (11, 9, 9.5),
    (12, 10, 11.5),
    (13, 11, 12.5),
    (14, 12, 13.5),
    (15, 13, 14.5),
    (13, 11, 11.0),
    (12, 10, 10.0),
]
# Worked by hand (tr = true range, U/D = final upper/lower bands, c = close):
# bar 0, 1: no ATR yet -> NaN.            tr0 = 11-9 = 2, tr1 = max(2, |12-10|, |10-10|) = 2
# bar 2: tr = 2, atr = (2+2+2)/3 = 2, hl2 = 12, up = 14, dn = 10.
#        D = 10 (10 > 0), U = 14 (c1 = 11 > 0). First bar with an ATR: down, line = U = 14.
# bar 3: tr = max(2, |14-12|, |12-12|) = 2, atr = 2, up = 15, dn = 11.
#        D = 11 (11 > 10); U stays 14 (15 > 14, c2 = 12 <= 14). Line was U: c = 13.5 <= 14 -> down, 14.
# bar 4: tr = max(2, 1.5, 0.5) = 2, atr = 2, up = 16, dn = 12. D = 12, U stays 14.
#        Line was U: c = 14.5 > 14 -> UP, line = D = 12.
# bar 5: tr = max(2, 0.5, 2.5) = 2.5, atr = 2 + (2.5-2)/3 = 13/6, dn = 13 - 13/6 = 10.83 < 12 and
#        c4 = 14.5 >= 12 -> D stays 12; U = 15.17 (c4 = 14.5 > 14). Line was D: c = 12.5 >= 12 -> up, 12.
# bar 6: tr = 2, atr = 13/6 + (2 - 13/6)/3 = 19/9, up = 12 + 19/9 = 14.111 < 15.17 -> U = 14.111;
#        D stays 12. Line was D: c = 11.5 < 12 -> DOWN, line = U = 14.111111.
# bar 7: tr = 2, atr = 19/9 - 1/27 = 56/27, U = 11 + 56/27 = 13.074074 (tighter).
# bar 8: tr = 2, atr = 56/27 - 2/81 = 166/81, U = 10 + 166/81 = 12.049383 (tighter).
# bar 9: tr = max(2, 2.5, 0.5) = 2.5, atr = 166/81 + (2.5 - 166/81)/3 = 2.199588, up = 13.20 is wider
#        and c8 = 9.5 <= 12.049383, so U carries over: 12.049383. c = 11.5 <= U -> down.
# bar 10: tr = 2, atr = 2.133059, U carries (14.13 wider, c9 = 11.5 <= U); c = 12.5 > 12.049383 -> UP;
#        D: bar 7 reset it to 11 - 56/27 = 8.925926 (c6 = 11.5 < 12), held on bars 8-9;
#        dn = 12 - 2.133059 = 9.866941 > 8.925926 -> line = D = 9.866941.
EXPECTED_LINE = [
    NAN,
    NAN,
    14.0,
    14.0,
    12.0,
    12.0,
    14.111111,
    13.074074,
    12.049383,
    12.049383,
    9.866941,
    10.911294,
    11.940863,
    14.539425,
    13.359617,
]
EXPECTED_DIRECTION = [NAN, NAN, -1, -1, 1, 1, -1, -1, -1, -1, 1, 1, 1, -1, -1]
EXPECTED_SIGNAL = [0, 0, 0, 0, 1, 0, -1, 0, 0, 0, 1, 0, 0, -1, 0]


def frame(rows=ROWS) -> pd.DataFrame:
    high, low, close = zip(*rows, strict=True)
    index = pd.date_range("2024-01-01", periods=len(rows), freq="1h", tz="UTC", name="timestamp")
    return pd.DataFrame(
        {"open": close, "high": high, "low": low, "close": close, "volume": 1.0}, index=index, dtype=float
    )


def random_walk(n: int, seed: int, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, scale, n))
    return close + rng.random(n) * scale, close - rng.random(n) * scale, close


def test_values_match_the_hand_computation():
    out = supertrend(frame(), period=3, multiplier=1.0)
    assert list(out.columns) == ["supertrend", "direction"]
    assert out.index.equals(frame().index)
    np.testing.assert_allclose(out["supertrend"], EXPECTED_LINE, atol=5e-7)
    np.testing.assert_array_equal(out["direction"], EXPECTED_DIRECTION)


@pytest.mark.parametrize("impl", ["python", "c"])
def test_each_implementation_matches_the_hand_computation(impl):
    if impl == "c" and kernels.C is None:
        pytest.skip("bot._speedups not built")
    high, low, close = (np.array(col, dtype=float) for col in zip(*ROWS, strict=True))
    line, direction = kernels.supertrend(high, low, close, 3, 1.0, impl=impl)
    np.testing.assert_allclose(line, EXPECTED_LINE, atol=5e-7)
    np.testing.assert_array_equal(direction, EXPECTED_DIRECTION)


def test_multiplier_two_and_warmup():
    # Period 3, multiplier 2: bar 2 has atr 2, so U = 12 + 4 = 16, D = 12 - 4 = 8; line = U (down).
    line, direction = supertrend_arrays(*zip(*ROWS, strict=True), period=3, multiplier=2.0)
    assert np.isnan(line[:2]).all() and np.isnan(direction[:2]).all()
    assert line[2] == 16.0 and direction[2] == -1
    # bar 3: up = 13 + 4 = 17 carries U = 16 (c2 = 12 <= 16); c = 13.5 <= 16 -> still down at 16.
    assert line[3] == 16.0 and direction[3] == -1


def test_period_longer_than_data_is_all_nan():
    line, direction = supertrend_arrays([2.0, 3.0], [1.0, 2.0], [1.5, 2.5], period=3, multiplier=1.0)
    assert np.isnan(line).all() and np.isnan(direction).all()
    line, direction = supertrend_arrays([], [], [], period=3, multiplier=1.0)
    assert len(line) == len(direction) == 0


def test_period_one_starts_on_the_first_bar():
    # Bar 0: atr = tr = 2, up = 12, dn = 8. There is no previous close, so as in Pine (where
    # close[1] is na) U keeps the previous final band 0 and the line starts at U = 0.
    line, direction = supertrend_arrays([11.0, 12.0], [9.0, 10.0], [10.0, 11.0], period=1, multiplier=1.0)
    assert direction[0] == -1 and line[0] == 0.0
    # Bar 1: tr = 2, atr = 2, up = 13 (c0 = 10 > 0 -> U = 13); line was U: c = 11 <= 13 -> down.
    assert direction[1] == -1 and line[1] == 13.0


def test_strategy_signals_flip_both_ways():
    strategy = SupertrendStrategy(period=3, multiplier=1.0)
    output = strategy.compute(Bars.from_frame(frame()))
    assert output.signal.dtype == np.int8
    assert output.signal.tolist() == EXPECTED_SIGNAL
    np.testing.assert_allclose(output.lines["supertrend"], EXPECTED_LINE, atol=5e-7)
    assert strategy.warmup == 4


def test_live_signal_on_each_closed_bar_equals_the_backtest_signal():
    high, low, close = random_walk(400, seed=7)
    times = np.arange(400, dtype=np.int64) * 60_000_000_000
    bars = Bars(times, close, high, low, close, np.ones(400))
    strategy = SupertrendStrategy(period=7, multiplier=2.0)
    full = strategy.compute(bars).signal
    live = [strategy.compute(bars[: i + 1]).signal[-1] for i in range(len(bars))]
    assert live == full.tolist()
    assert (full == 1).sum() > 3 and (full == -1).sum() > 3
    assert not full[: strategy.warmup - 1].any()


def test_flips_ignores_warmup_nans():
    assert flips(np.array([NAN, NAN, -1, 1, 1, -1])).tolist() == [0, 0, 0, 1, 0, -1]
    assert flips(np.array([])).tolist() == []


@pytest.mark.parametrize(
    "params",
    [
        {"period": 0},
        {"period": 2.5},
        {"period": 1001},
        {"multiplier": 0},
        {"multiplier": "abc"},
        {"multiplier": "nan"},
        {"length": 3},
    ],
)
def test_bad_params_raise_strategy_error(params):
    with pytest.raises(StrategyError):
        SupertrendStrategy(**params)


def test_bad_indicator_arguments_raise_strategy_error():
    with pytest.raises(StrategyError):
        supertrend(frame(), period=0)
    with pytest.raises(StrategyError):
        supertrend(frame(), multiplier=-1)


def test_registered_as_builtin_plugin():
    registry = load_registry(load_entry_points=False)
    assert registry.strategies["supertrend"] is SupertrendStrategy
    strategy = registry.create("supertrend:period=5,multiplier=2.5")
    assert (strategy.period, strategy.multiplier) == (5, 2.5)


# --- C kernel against the Python reference: bit-identical, edge cases included -------------


CASES = [
    ("random walk", random_walk(3000, seed=1), 10, 3.0),
    ("random walk, short period", random_walk(3000, seed=2, scale=5.0), 2, 0.5),
    ("period 1", random_walk(500, seed=3), 1, 1.0),
    ("long period", random_walk(500, seed=4), 200, 3.0),
    ("period longer than data", random_walk(20, seed=5), 50, 3.0),
    ("flat prices", (np.full(300, 100.0), np.full(300, 100.0), np.full(300, 100.0)), 10, 3.0),
    ("one bar", (np.array([2.0]), np.array([1.0]), np.array([1.5])), 1, 3.0),
    ("empty", (np.empty(0), np.empty(0), np.empty(0)), 3, 3.0),
    (
        "integer prices",
        (np.arange(300) % 17 + 20.0, np.arange(300) % 17 + 10.0, np.arange(300) % 17 + 15.0),
        3,
        1,
    ),
    ("tiny multiplier", random_walk(1000, seed=6), 14, 0.1),
]


@pytest.mark.skipif(kernels.C is None, reason="bot._speedups not built (no compiler): Python kernels in use")
@pytest.mark.parametrize(("label", "data", "period", "multiplier"), CASES, ids=[c[0] for c in CASES])
def test_c_and_python_kernels_agree_exactly(label, data, period, multiplier):
    high, low, close = (np.asarray(a, dtype=float) for a in data)
    py = kernels.supertrend(high, low, close, period, multiplier, impl="python")
    c = kernels.supertrend(high, low, close, period, multiplier, impl="c")
    for a, b in zip(py, c, strict=True):
        assert np.array_equal(a, b, equal_nan=True)


@pytest.mark.skipif(kernels.C is None, reason="bot._speedups not built")
def test_c_and_python_agree_with_nan_rows():
    high, low, close = random_walk(200, seed=8)
    high[50] = low[120] = close[121] = NAN
    py = kernels.supertrend(high, low, close, 5, 2.0, impl="python")
    c = kernels.supertrend(high, low, close, 5, 2.0, impl="c")
    for a, b in zip(py, c, strict=True):
        assert np.array_equal(a, b, equal_nan=True)


def test_c_kernel_rejects_wrong_arrays():
    if kernels.C is None:
        pytest.skip("bot._speedups not built")
    out = np.empty(3)
    with pytest.raises(TypeError):
        kernels.C.supertrend(np.ones(3, dtype=np.float32), np.ones(3), np.ones(3), 2, 1.0, out, np.empty(3))
    with pytest.raises(ValueError):
        kernels.C.supertrend(np.ones(3), np.ones(4), np.ones(3), 2, 1.0, out, np.empty(3))


def test_pure_python_fallback_can_be_forced():
    """TRADEBOT_PURE_PYTHON through the settings: tests/test_config.py runs it from .env."""
    code = "from bot import kernels; kernels.use_pure_python(); print(kernels.implementation())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "python"
