"""The synthetic market: a pure, deterministic function of (symbol, timeframe, time)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from bot.bars import COLUMNS, NS, Bars, Timeframe
from bot.data.base import BarSource
from bot.data.synthetic import SyntheticMarket

ROOT = Path(__file__).resolve().parents[1]
M1 = Timeframe.parse("1m")
END = datetime(2026, 3, 2, 14, 37, 21, tzinfo=UTC)  # deliberately not on a bar boundary
SYMBOLS = ["AAPL", "MSFT", "SPY", "BTC/USD", "ETH/USD"]


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return SyntheticMarket()


def digest(bars: Bars) -> str:
    h = hashlib.sha256()
    for name in ("time", *COLUMNS):
        h.update(np.ascontiguousarray(getattr(bars, name)).tobytes())
    return h.hexdigest()


def test_is_a_bar_source(market):
    assert isinstance(market, BarSource)
    assert market.name == "synthetic"


def test_identical_in_another_process(market):
    script = (
        "import hashlib\n"
        "from datetime import datetime, timedelta, UTC\n"
        "from bot.bars import Timeframe\n"
        "from bot.data.synthetic import SyntheticMarket\n"
        "def digest(b):\n"
        "    h = hashlib.sha256()\n"
        "    for n in ('time', 'open', 'high', 'low', 'close', 'volume'):\n"
        "        h.update(getattr(b, n).tobytes())\n"
        "    return h.hexdigest()\n"
        "end = datetime(2026, 3, 2, 14, 37, 21, tzinfo=UTC)\n"
        "tf = Timeframe.parse('1m')\n"
        "out = SyntheticMarket().fetch(['ETH/USD', 'AAPL'], tf, end - timedelta(hours=2), end)\n"
        "print(digest(out['AAPL']), digest(out['ETH/USD']))\n"
    )
    # A different hash seed in the child: Python's hash() must play no part.
    env = {"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"}
    child = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    here = market.fetch(["AAPL", "ETH/USD"], M1, END - timedelta(hours=2), END)
    assert child.stdout.split() == [digest(here["AAPL"]), digest(here["ETH/USD"])]


@pytest.mark.parametrize("label", ["1m", "5m", "15m", "1h", "4h", "1d"])
def test_bars_are_aligned_and_cover_the_window(market, label):
    tf = Timeframe.parse(label)
    start = END - timedelta(seconds=tf.seconds * 50 + 7)
    bars = market.fetch(["AAPL"], tf, start, END)["AAPL"]
    step = tf.seconds * NS
    assert bars.time.dtype == np.int64
    assert np.all(bars.time % step == 0)
    assert np.all(np.diff(bars.time) == step)
    first = -(-int(start.timestamp()) // tf.seconds) * tf.seconds
    assert int(bars.time[0]) == first * NS
    assert bars.time[0] >= int(start.timestamp()) * NS
    assert bars.time[-1] < int(END.timestamp()) * NS <= bars.time[-1] + step
    assert len(bars) in (50, 51)


def test_window_bounds_are_start_inclusive_end_exclusive(market):
    start = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
    bars = market.fetch(["AAPL"], M1, start, start + timedelta(minutes=3))["AAPL"]
    assert [b // NS for b in bars.time.tolist()] == [int(start.timestamp()) + 60 * i for i in range(3)]
    assert market.fetch(["AAPL"], M1, start, start) == {}
    assert market.fetch(["AAPL"], M1, start, start - timedelta(minutes=5)) == {}


@pytest.mark.parametrize("label", ["1m", "1h", "1d"])
def test_ohlcv_invariants(market, label):
    tf = Timeframe.parse(label)
    out = market.fetch(SYMBOLS, tf, END - timedelta(seconds=tf.seconds * 500), END)
    assert set(out) == set(SYMBOLS)
    for bars in out.values():
        for name in COLUMNS:
            column = getattr(bars, name)
            assert column.dtype == np.float64 and len(column) == len(bars.time)
            assert np.all(np.isfinite(column)) and np.all(column > 0)
        assert np.all(bars.high >= np.maximum(bars.open, bars.close))
        assert np.all(bars.low <= np.minimum(bars.open, bars.close))
        assert np.any(bars.high > np.maximum(bars.open, bars.close))  # real wicks, not just bodies
        assert np.any(bars.low < np.minimum(bars.open, bars.close))


def test_history_never_changes(market):
    window = market.fetch(SYMBOLS, M1, END - timedelta(hours=1), END)
    later = market.fetch(SYMBOLS, M1, END - timedelta(hours=5), END + timedelta(hours=3))
    for symbol in SYMBOLS:
        old, new = window[symbol], later[symbol]
        at = int(np.searchsorted(new.time, old.time[0]))
        assert digest(new[at : at + len(old)]) == digest(old)


def test_fetch_in_pieces_equals_fetch_at_once(market):
    whole = market.fetch(["BTC/USD"], M1, END - timedelta(days=2), END)["BTC/USD"]
    parts = [
        market.fetch(["BTC/USD"], M1, END - timedelta(days=2 - d), END - timedelta(days=1 - d))["BTC/USD"]
        for d in (0, 1)
    ]
    assert digest(Bars.concat(parts)) == digest(whole)


def test_one_symbol_alone_equals_it_in_a_batch(market):
    alone = market.fetch(["MSFT"], M1, END - timedelta(hours=3), END)["MSFT"]
    batch = market.fetch(["AAPL", "MSFT", "BTC/USD"], M1, END - timedelta(hours=3), END)["MSFT"]
    assert digest(alone) == digest(batch)


def test_symbols_differ_and_have_plausible_price_levels(market):
    out = market.fetch([*SYMBOLS, "ZZZZ", "ABCD"], M1, END - timedelta(hours=6), END)
    closes = {s: b.close for s, b in out.items()}
    returns = {s: np.diff(np.log(c)) for s, c in closes.items()}
    names = list(closes)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert abs(np.corrcoef(returns[a], returns[b])[0, 1]) < 0.3, (a, b)
    assert 20_000 < closes["BTC/USD"][-1] < 200_000
    assert 1_000 < closes["ETH/USD"][-1] < 10_000
    for stock in ("AAPL", "MSFT", "SPY", "ZZZZ", "ABCD"):
        assert 10 < closes[stock][-1] < 1_000


def test_price_at_agrees_with_the_bars(market):
    bars = market.fetch(["AAPL", "ETH/USD"], M1, END - timedelta(minutes=30), END)
    for symbol, b in bars.items():
        for i in (0, 7, len(b) - 1):
            start = datetime.fromtimestamp(int(b.time[i]) // NS, tz=UTC)
            assert market.price_at(symbol, start) == pytest.approx(b.open[i], rel=1e-12)
            assert market.price_at(symbol, start + timedelta(minutes=1)) == pytest.approx(
                b.close[i], rel=1e-12
            )
            inside = market.price_at(symbol, start + timedelta(seconds=23.5))
            assert b.low[i] <= inside <= b.high[i]
        assert np.allclose(b.close[:-1], b.open[1:], rtol=1e-12)  # one continuous path


def test_price_at_is_the_vectorised_path_to_the_bit():
    """``price_at`` computes one point in plain Python (it runs for every position several times a
    cycle); it must give exactly what the vectorised path the bars come from gives."""
    import random

    from bot.data import synthetic

    rng = random.Random(7)
    market = SyntheticMarket()
    for symbol in ["AAPL", "BTC/USD", "SAA", "CB/USD", "DOGE/USD", "BRK.B"]:
        p = synthetic.profile(symbol)
        times = [rng.randrange(-(10**12), 4 * 10**12) for _ in range(500)] + [0, 1, 14_999, 15_000]
        vectorised = np.exp(synthetic._log_path([p], np.array(times, dtype=np.int64))[0])
        for t, expected in zip(times, vectorised, strict=True):
            when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=t)
            assert market.price_at(symbol, when) == float(expected), (symbol, t)


def test_longer_bars_agree_with_one_minute_bars(market):
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    one = market.fetch(["SPY"], M1, start, start + timedelta(hours=1))["SPY"]
    five = market.fetch(["SPY"], Timeframe.parse("5m"), start, start + timedelta(hours=1))["SPY"]
    grouped = {name: getattr(one, name).reshape(12, 5) for name in ("open", "high", "low", "close")}
    assert np.allclose(five.open, grouped["open"][:, 0], rtol=1e-12)
    assert np.allclose(five.close, grouped["close"][:, -1], rtol=1e-12)
    assert np.allclose(five.high, grouped["high"].max(axis=1), rtol=1e-12)
    assert np.allclose(five.low, grouped["low"].min(axis=1), rtol=1e-12)


def test_naive_datetimes_are_utc(market):
    aware = market.fetch(["AAPL"], M1, END - timedelta(minutes=10), END)["AAPL"]
    naive = market.fetch(
        ["AAPL"], M1, (END - timedelta(minutes=10)).replace(tzinfo=None), END.replace(tzinfo=None)
    )
    assert digest(naive["AAPL"]) == digest(aware)


def _directions(high: np.ndarray, low: np.ndarray, close: np.ndarray, period=10, mult=3.0) -> np.ndarray:
    """A plain TradingView Supertrend, direction only (independent of plugins/)."""
    tr = np.maximum(high - low, np.maximum(abs(high - np.roll(close, 1)), abs(low - np.roll(close, 1))))
    tr[0] = high[0] - low[0]
    atr = tr[:period].mean()
    upper = lower = None
    direction = []
    for i in range(period - 1, len(close)):
        if i >= period:
            atr = (atr * (period - 1) + tr[i]) / period
        mid = (high[i] + low[i]) / 2
        up, lo = mid + mult * atr, mid - mult * atr
        if upper is None:
            upper, lower, d = up, lo, -1
        else:
            lower = lo if lo > lower or close[i - 1] < lower else lower
            upper = up if up < upper or close[i - 1] > upper else upper
            d = (1 if close[i] > upper else -1) if d == -1 else (-1 if close[i] < lower else 1)
        direction.append(d)
    return np.array(direction)


def test_one_minute_bars_suit_a_live_demo(market):
    """Volatility per 1m bar of 0.05-0.3 %, and Supertrend(10, 3) flipping both ways every
    ~20-80 bars, so the simulator at one bar per second trades within a minute or two."""
    out = market.fetch(SYMBOLS, M1, END - timedelta(minutes=3000), END)
    gaps = []
    for bars in out.values():
        vol = np.diff(np.log(bars.close)).std()
        assert 0.0005 < vol < 0.003
        direction = _directions(bars.high, bars.low, bars.close)
        turns = np.flatnonzero(np.diff(direction))
        ups = np.count_nonzero(np.diff(direction) > 0)
        assert ups > 10 and len(turns) - ups > 10
        gaps.extend(np.diff(turns).tolist())
    assert 20 <= np.mean(gaps) <= 80
    assert 10 <= np.median(gaps) <= 60
