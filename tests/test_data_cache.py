"""HistoryCache: fetches only new bars, in batches, bounded, and keeps old data through outages."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from bot.bars import NS, Bars, Timeframe
from bot.data.base import DataError
from bot.data.cache import CacheResult, HistoryCache
from bot.data.synthetic import SyntheticMarket

M1 = Timeframe.parse("1m")
NOW = datetime(2026, 4, 1, 12, 0, 25, tzinfo=UTC)  # bar 12:00 is still forming
FLOOR = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)


@dataclass
class Recording:
    """The real synthetic market behind a recorder; can be told to fail or to hide symbols."""

    inner: SyntheticMarket = field(default_factory=SyntheticMarket)
    calls: list[tuple[list[str], datetime, datetime]] = field(default_factory=list)
    fail_with: Exception | None = None
    hide: set[str] = field(default_factory=set)
    name: str = "recording"

    def fetch(self, symbols, timeframe, start, end):
        self.calls.append((list(symbols), start, end))
        if self.fail_with is not None:
            raise self.fail_with
        out = self.inner.fetch(symbols, timeframe, start, end)
        return {s: b for s, b in out.items() if s not in self.hide}


def expected(symbol: str, start: datetime, end: datetime) -> Bars:
    return SyntheticMarket().fetch([symbol], M1, start, end)[symbol]


def same(a: Bars, b: Bars) -> bool:
    return all(
        np.array_equal(getattr(a, n), getattr(b, n))
        for n in ("time", "open", "high", "low", "close", "volume")
    )


def test_first_update_fetches_the_window_in_one_call():
    source = Recording()
    cache = HistoryCache(source, M1, max_bars=100)
    result = cache.update(["AAPL", "BTC/USD", "MSFT"], NOW)
    assert isinstance(result, CacheResult)
    assert source.calls == [(["AAPL", "BTC/USD", "MSFT"], FLOOR - timedelta(minutes=100), FLOOR)]
    assert result.errors == {}
    assert set(result.bars) == {"AAPL", "BTC/USD", "MSFT"}
    for symbol, bars in result.bars.items():
        assert len(bars) == 100
        assert bars.last_time() == FLOOR - timedelta(minutes=1)  # the forming bar is not there
        assert same(bars, expected(symbol, FLOOR - timedelta(minutes=100), FLOOR))
        assert cache.get(symbol) is bars
    assert cache.get("TSLA") is None


def test_next_updates_fetch_only_new_bars():
    source = Recording()
    cache = HistoryCache(source, M1, max_bars=50)
    cache.update(["AAPL", "MSFT"], NOW)
    source.calls.clear()

    # Same minute again: nothing new has closed, so no call at all.
    cache.update(["AAPL", "MSFT"], NOW + timedelta(seconds=20))
    assert source.calls == []

    later = NOW + timedelta(minutes=3)
    result = cache.update(["AAPL", "MSFT"], later)
    # from the last cached bar (asked again, to see whether history was rewritten: a split)
    assert source.calls == [(["AAPL", "MSFT"], FLOOR - timedelta(minutes=1), FLOOR + timedelta(minutes=3))]
    for symbol in ("AAPL", "MSFT"):
        bars = result.bars[symbol]
        assert len(bars) == 50  # trimmed to max_bars
        assert bars.last_time() == FLOOR + timedelta(minutes=2)
        assert same(bars, expected(symbol, FLOOR - timedelta(minutes=47), FLOOR + timedelta(minutes=3)))


def test_one_call_per_distinct_start():
    source = Recording()
    cache = HistoryCache(source, M1, max_bars=30)
    cache.update(["AAPL", "MSFT"], NOW)
    source.calls.clear()
    result = cache.update(["AAPL", "ETH/USD", "MSFT", "SPY"], NOW + timedelta(minutes=1))
    end = FLOOR + timedelta(minutes=1)
    assert sorted(source.calls) == sorted(
        [
            (["AAPL", "MSFT"], FLOOR - timedelta(minutes=1), end),  # cached: from their last bar
            (["ETH/USD", "SPY"], end - timedelta(minutes=30), end),  # new: a full window
        ]
    )
    assert {s: len(b) for s, b in result.bars.items()} == {"AAPL": 30, "ETH/USD": 30, "MSFT": 30, "SPY": 30}


def test_long_gap_asks_only_for_the_window():
    source = Recording()
    cache = HistoryCache(source, M1, max_bars=20)
    cache.update(["AAPL"], NOW)
    source.calls.clear()
    much_later = NOW + timedelta(days=3)
    result = cache.update(["AAPL"], much_later)
    end = FLOOR + timedelta(days=3)
    assert source.calls == [
        (["AAPL"], FLOOR - timedelta(minutes=1), FLOOR),  # its last cached bar, alone: rewritten?
        (["AAPL"], end - timedelta(minutes=20), end),
    ]
    assert same(result.bars["AAPL"], expected("AAPL", end - timedelta(minutes=20), end))


def test_data_error_keeps_old_bars_and_reports_every_symbol_of_the_batch():
    source = Recording()
    cache = HistoryCache(source, M1, max_bars=10)
    before = cache.update(["AAPL", "MSFT"], NOW).bars
    source.fail_with = DataError("alpaca: 503 service unavailable")
    result = cache.update(["AAPL", "MSFT", "SPY"], NOW + timedelta(minutes=2))
    assert result.errors == dict.fromkeys(["AAPL", "MSFT", "SPY"], "alpaca: 503 service unavailable")
    assert set(result.bars) == {"AAPL", "MSFT"}  # SPY never had data
    for symbol in ("AAPL", "MSFT"):
        assert same(result.bars[symbol], before[symbol])
    # Recovery: the missed bars are fetched from where the cache stopped.
    source.fail_with = None
    source.calls.clear()
    result = cache.update(["AAPL", "MSFT", "SPY"], NOW + timedelta(minutes=2))
    assert result.errors == {}
    assert (["AAPL", "MSFT"], FLOOR - timedelta(minutes=1), FLOOR + timedelta(minutes=2)) in source.calls
    assert result.bars["AAPL"].last_time() == FLOOR + timedelta(minutes=1)


def test_unexpected_exception_is_contained_to_its_batch():
    source = Recording(fail_with=ConnectionError("reset by peer"))
    result = HistoryCache(source, M1, max_bars=10).update(["AAPL"], NOW)
    assert result.bars == {}
    assert "ConnectionError" in result.errors["AAPL"] and "reset by peer" in result.errors["AAPL"]


def test_symbol_missing_from_the_answer():
    source = Recording(hide={"NOPE"})
    cache = HistoryCache(source, M1, max_bars=10)
    result = cache.update(["AAPL", "NOPE"], NOW)
    assert set(result.bars) == {"AAPL"}
    assert set(result.errors) == {"NOPE"}
    assert "no 1m bars for NOPE from recording" in result.errors["NOPE"]
    # A cached symbol that gets no new bars (market closed) keeps its window, no error:
    # staleness is validate_bars' call.
    source.hide = {"AAPL", "NOPE"}
    result = cache.update(["AAPL", "NOPE"], NOW + timedelta(minutes=5))
    assert len(result.bars["AAPL"]) == 10 and set(result.errors) == {"NOPE"}


class Messy:
    """Answers with overlap, duplicates, disorder and a bar still forming."""

    name = "messy"

    def __init__(self, times: list[int]):
        self.times = times

    def fetch(self, symbols, timeframe, start, end):
        t = np.array(self.times, dtype=np.int64) * 60 * NS + int(FLOOR.timestamp()) * NS
        price = 100 + np.arange(len(t), dtype=float)
        return {s: Bars(t, price, price + 1, price - 1, price, np.ones(len(t))) for s in symbols}


def test_merge_keeps_times_strictly_increasing():
    cache = HistoryCache(Messy([-5, -4, -3, -2, -1]), M1, max_bars=8)
    cache.update(["X"], NOW)
    # Next minute's answer repeats old bars, repeats a new one, is out of order and includes
    # the forming bar (12:02) and one far in the future.
    cache.source = Messy([-2, 1, 0, -1, 0, 2, 90])
    bars = cache.update(["X"], NOW + timedelta(minutes=2)).bars["X"]
    minutes = ((bars.time - int(FLOOR.timestamp()) * NS) // (60 * NS)).tolist()
    assert minutes == [-5, -4, -3, -2, -1, 0, 1]
    assert bars.close[-2] == 102.0  # the first of the two 12:00 bars


def test_memory_stays_bounded():
    cache = HistoryCache(SyntheticMarket(), M1, max_bars=200)
    symbols = [f"S{i}" for i in range(20)]
    for minute in range(0, 600, 7):
        cache.update(symbols, NOW + timedelta(minutes=minute))
    for symbol in symbols:
        bars = cache.get(symbol)
        assert len(bars) == 200
        for name in ("time", "open", "high", "low", "close", "volume"):
            column = getattr(bars, name)
            assert column.base is None or column.base.size <= 200 + 7  # no hidden large buffers
        assert np.all(np.diff(bars.time) == 60 * NS)  # contiguous: no bar lost or repeated


def test_invalid_max_bars():
    with pytest.raises(ValueError):
        HistoryCache(SyntheticMarket(), M1, max_bars=0)


@dataclass
class Splitting(Recording):
    """After ``split()``, the source serves every bar of ``symbol`` (the past included) at a
    quarter of the price and four times the volume: split-adjusted bars after a 4-for-1 split."""

    ratio: dict[str, float] = field(default_factory=dict)
    fail_rereads: bool = False

    def fetch(self, symbols, timeframe, start, end):
        if self.fail_rereads and self.ratio and start < FLOOR - timedelta(minutes=5):
            self.calls.append((list(symbols), start, end))
            raise DataError("alpaca: 503 service unavailable")
        out = super().fetch(symbols, timeframe, start, end)
        for symbol, ratio in self.ratio.items():
            if symbol in out:
                b = out[symbol]
                out[symbol] = Bars(
                    b.time, b.open / ratio, b.high / ratio, b.low / ratio, b.close / ratio, b.volume * ratio
                )
        return out


def test_a_split_rereads_the_cached_window_and_keeps_other_symbols_as_they_are():
    source = Splitting()
    cache = HistoryCache(source, M1, max_bars=30)
    cache.update(["AAPL", "MSFT"], NOW)
    source.ratio["AAPL"] = 4.0
    source.calls.clear()
    later = NOW + timedelta(minutes=2)
    result = cache.update(["AAPL", "MSFT"], later)
    end = FLOOR + timedelta(minutes=2)
    assert source.calls == [
        (["AAPL", "MSFT"], FLOOR - timedelta(minutes=1), end),  # the last bar again, and the new ones
        (["AAPL"], FLOOR - timedelta(minutes=30), end),  # AAPL's cached window, read again
    ]
    fresh = expected("AAPL", end - timedelta(minutes=30), end)
    np.testing.assert_allclose(result.bars["AAPL"].close, fresh.close / 4)  # one scale throughout
    assert same(result.bars["MSFT"], expected("MSFT", end - timedelta(minutes=30), end))


def test_a_split_whose_reread_fails_drops_the_window_rather_than_mix_two_scales():
    source = Splitting(fail_rereads=True)
    cache = HistoryCache(source, M1, max_bars=30)
    cache.update(["AAPL"], NOW)
    source.ratio["AAPL"] = 4.0
    result = cache.update(["AAPL"], NOW + timedelta(minutes=2))
    assert "AAPL" not in result.bars and cache.get("AAPL") is None
    assert result.errors == {"AAPL": "alpaca: 503 service unavailable"}
    source.fail_rereads = False  # the next cycle starts the window afresh
    assert len(cache.update(["AAPL"], NOW + timedelta(minutes=3)).bars["AAPL"]) == 30
