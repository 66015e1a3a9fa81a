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
