"""The built-in strategies' indicators against TA-Lib, the reference, to 1e-9 on real data.

TA-Lib's Python package (the C library inside its wheel; installed by the dev extra only) is
run on the sample dataset shipped with tradebot (Microsoft's daily bars 1986-2017, prices from
four cents to $84), and every value of ours, warm-up bars included, must match: NaN exactly where
TA-Lib has no value, within 1e-9 relative (1e-12 absolute near zero) elsewhere. Then each
strategy's signal is checked against its rule applied to TA-Lib's own values.
"""

from __future__ import annotations

import numpy as np
import pytest
import talib

from bot import indicators
from bot.backtest import data
from bot.backtest.samples import sample_path
from bot.bars import Bars
from plugins.bollinger import BollingerReversion
from plugins.donchian import DonchianBreakout
from plugins.ma_cross import EmaCross, SmaCross
from plugins.macd import MacdCross
from plugins.rsi import RsiReversion


@pytest.fixture(scope="module")
def bars() -> Bars:
    return data.read_csv(sample_path("msft-daily"))


def same(ours: np.ndarray, reference: np.ndarray) -> None:
    assert ours.shape == reference.shape and ours.dtype == np.float64
    assert np.array_equal(np.isnan(ours), np.isnan(reference)), "warm-up bars differ"
    np.testing.assert_allclose(ours, reference, rtol=1e-9, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("n", [2, 5, 10, 20, 30, 50, 200])
def test_sma(bars, n):
    same(indicators.sma(bars.close, n), talib.SMA(bars.close, n))


@pytest.mark.parametrize("n", [2, 5, 9, 12, 26, 50, 200])
def test_ema(bars, n):
    same(indicators.ema(bars.close, n), talib.EMA(bars.close, n))


@pytest.mark.parametrize("n", [2, 3, 5, 14, 30])
def test_rsi(bars, n):
    same(indicators.rsi(bars.close, n), talib.RSI(bars.close, n))


@pytest.mark.parametrize(("n", "k"), [(5, 2.0), (20, 2.0), (20, 1.5), (50, 3.0), (2, 0.5)])
def test_bbands(bars, n, k):
    for ours, reference in zip(
        indicators.bbands(bars.close, n, k), talib.BBANDS(bars.close, n, k, k, matype=0), strict=True
    ):
        same(ours, reference)


@pytest.mark.parametrize("n", [2, 10, 20, 55])
def test_max_and_min(bars, n):
    same(indicators.rolling_max(bars.high, n), talib.MAX(bars.high, n))
    same(indicators.rolling_min(bars.low, n), talib.MIN(bars.low, n))


@pytest.mark.parametrize(
    ("fast", "slow", "signal"), [(12, 26, 9), (5, 35, 5), (3, 10, 16), (2, 3, 1), (26, 12, 9)]
)
def test_macd(bars, fast, slow, signal):
    # (26, 12, 9): TA-Lib swaps a fast period above the slow one, and so do we.
    for ours, reference in zip(
        indicators.macd(bars.close, fast, slow, signal),
        talib.MACD(bars.close, fast, slow, signal),
        strict=True,
    ):
        same(ours, reference)


@pytest.mark.parametrize(
    "series",
    [
        np.r_[
            np.full(12, 5.0), np.full(12, 6.0), np.full(12, 6.0)
        ],  # flat runs: RSI 0 and 100, a deviation of 0
        np.linspace(0.0001, 0.0002, 60),  # prices of a hundredth of a cent
        np.linspace(60_000, 60_001, 60) + np.sin(np.arange(60)) * 1e-3,  # large prices, tiny moves
        np.array([1.0, 2.0, 3.0]),  # shorter than every period below
    ],
    ids=["flat runs", "tiny prices", "large prices", "too short"],
)
def test_edge_series(series):
    same(indicators.sma(series, 5), talib.SMA(series, 5))
    same(indicators.ema(series, 5), talib.EMA(series, 5))
    same(indicators.rsi(series, 5), talib.RSI(series, 5))
    same(indicators.rolling_max(series, 5), talib.MAX(series, 5))
    for ours, reference in zip(indicators.macd(series, 3, 6, 4), talib.MACD(series, 3, 6, 4), strict=True):
        same(ours, reference)
    upper, middle, lower = indicators.bbands(series, 5, 2.0)
    ref_upper, ref_middle, ref_lower = talib.BBANDS(series, 5, 2.0, 2.0)
    same(middle, ref_middle)
    # TA-Lib's deviation is sqrt(mean(x^2) - mean^2), which loses the digits of a small spread on a
    # large price; ours subtracts the mean first. They agree to 1e-9 of the price.
    np.testing.assert_allclose(upper, ref_upper, rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(lower, ref_lower, rtol=1e-9, equal_nan=True)


# --- each strategy's signal is its rule applied to TA-Lib's values -----------------------------------


def crosses(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bars where a closes above b (was at or below), and below b (was at or above), by a loop;
    values within one part in 10^12 of b are a tie, as the strategies define it."""
    up = np.zeros(len(a), dtype=bool)
    down = np.zeros(len(a), dtype=bool)
    for i in range(1, len(a)):
        now, before = 1e-12 * abs(b[i]), 1e-12 * abs(b[i - 1])
        up[i] = a[i] > b[i] + now and a[i - 1] <= b[i - 1] + before
        down[i] = a[i] < b[i] - now and a[i - 1] >= b[i - 1] - before
    return up, down


def expected(buy: np.ndarray, sell: np.ndarray) -> np.ndarray:
    assert not (buy & sell).any()
    return buy.astype(np.int8) - sell.astype(np.int8)


def check(strategy, bars, buy, sell):  # type: ignore[no-untyped-def]
    got = strategy.compute(bars).signal
    want = expected(buy, sell)
    assert got.dtype == np.int8 and (want == 1).sum() > 10 and (want == -1).sum() > 10
    assert np.array_equal(got, want)
    assert not got[: strategy.warmup - 1].any()  # nothing before the warm-up is over


def test_sma_cross_signals(bars):
    up, down = crosses(talib.SMA(bars.close, 10), talib.SMA(bars.close, 30))
    check(SmaCross(fast=10, slow=30), bars, up, down)


def test_ema_cross_signals(bars):
    up, down = crosses(talib.EMA(bars.close, 12), talib.EMA(bars.close, 26))
    check(EmaCross(fast=12, slow=26), bars, up, down)


def test_rsi_signals(bars):
    value = talib.RSI(bars.close, 14)
    below, _ = crosses(np.full(len(value), 30.0), value)  # RSI falls below 30: 30 is now above it
    _, above = crosses(np.full(len(value), 70.0), value)  # RSI rises above 70
    check(RsiReversion(period=14, oversold=30, overbought=70), bars, below, above)


def test_bollinger_signals(bars):
    _, middle, lower = talib.BBANDS(bars.close, 20, 2.0, 2.0)
    _, falls_below_lower = crosses(bars.close, lower)
    rises_above_middle, _ = crosses(bars.close, middle)
    check(BollingerReversion(period=20, stddev=2.0), bars, falls_below_lower, rises_above_middle)


def test_donchian_signals(bars):
    high = talib.MAX(bars.high, 20)
    low = talib.MIN(bars.low, 10)
    buy = np.zeros(len(bars), dtype=bool)
    sell = np.zeros(len(bars), dtype=bool)
    buy[1:] = bars.close[1:] > high[:-1]  # above the highest high of the 20 bars before
    sell[1:] = bars.close[1:] < low[:-1]  # below the lowest low of the 10 bars before
    check(DonchianBreakout(entry=20, exit=10), bars, buy, sell)


def test_macd_signals(bars):
    line, signal, _ = talib.MACD(bars.close, 12, 26, 9)
    up, down = crosses(line, signal)
    check(MacdCross(fast=12, slow=26, signal=9), bars, up, down)


# --- parameters that make no sense are refused, in one line ------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("sma_cross:fast=30,slow=10", "sma_cross: fast=30 must be below slow=10"),
        ("ema_cross:fast=26,slow=26", "ema_cross: fast=26 must be below slow=26"),
        ("rsi:oversold=70,overbought=30", "rsi: oversold=70 must be below overbought=30"),
        ("rsi:period=1", "period=1 is below its minimum 2"),
        ("macd:fast=26,slow=12", "macd: fast=26 must be below slow=12"),
        ("donchian:entry=1", "entry=1 is below its minimum 2"),
        ("bollinger:stddev=0", "stddev=0 is below its minimum 0.1"),
    ],
)
def test_parameters_that_make_no_sense_are_refused(spec, message):
    from bot.plugins import load_registry
    from bot.strategy import StrategyError

    with pytest.raises(StrategyError) as caught:
        load_registry(load_entry_points=False).create(spec)
    assert message in str(caught.value)


def test_a_refused_parameter_through_the_command(tmp_path):
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [
            *(sys.executable, "-m", "bot", "backtest", "--strategy", "sma_cross", "--sample", "msft-daily"),
            *("--param", "fast=50", "--param", "slow=20"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "TRADEBOT_"))},
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == "tradebot backtest: error: sma_cross: fast=50 must be below slow=20"


def test_rounding_is_no_cross(bars):
    """On the sample's flat stretch of 1986 the 10- and 30-day averages are mathematically equal
    on bar 112 and differ only by rounding (ours by -3e-17, TA-Lib's running sums by +1e-16): a
    tie, not a signal; the real move down on bar 117, out of the tie, is the sell."""
    fast, slow = indicators.sma(bars.close, 10), indicators.sma(bars.close, 30)
    assert 0 < abs(fast[112] - slow[112]) < 1e-15 and fast[111] > slow[111] and fast[117] < slow[117]
    signal = SmaCross(fast=10, slow=30).compute(bars).signal
    assert signal[112] == 0 and signal[117] == -1 and not signal[109:117].any()
    one = np.ones(3)
    assert indicators.crossed_above(np.array([1.0, 1.0 + 2.2e-16, 1.1]), one).tolist() == [False, False, True]
    assert indicators.crossed_below(np.array([1.0, 1.0 - 2.2e-16, 0.9]), one).tolist() == [False, False, True]
