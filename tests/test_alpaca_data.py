"""Market data: alpaca-py's data clients against the fake Alpaca server, Polygon, and the fallback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from bot.alpaca.data import AlpacaBarSource, alpaca_timeframe
from bot.bars import NS, Bars, Timeframe
from bot.data.base import DataError
from bot.data.cache import HistoryCache
from bot.data.fallback import FallbackSource
from bot.data.polygon import POLYGON_READS, PolygonBarSource
from tests.fakes.alpaca import FakeAlpaca
from tests.fakes.polygon_server import FakePolygon

T0 = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
M1 = Timeframe.parse("1m")


def ramp(n: int, start: datetime = T0, step: int = 60, base: float = 100.0) -> Bars:
    times = np.array([int(start.timestamp()) * NS + i * step * NS for i in range(n)], dtype=np.int64)
    close = base + np.arange(n, dtype=float)
    return Bars(times, close - 0.5, close + 1.0, close - 1.0, close, np.full(n, 1000.0))


@pytest.fixture
def alpaca():
    with FakeAlpaca(page_size=50) as server:
        yield server


@pytest.fixture
def polygon():
    with FakePolygon(page_size=25) as server:
        yield server


def source_for(fake: FakeAlpaca, **kw) -> AlpacaBarSource:
    return AlpacaBarSource.create("test-key", "test-secret", url=fake.url, sleep=lambda s: None, **kw)


def test_stock_bars_for_many_symbols_come_in_one_paged_request(alpaca):
    for i, symbol in enumerate(("AAPL", "MSFT", "SPY")):
        alpaca.set_bars(symbol, ramp(40, base=100 + 100 * i))
    source = source_for(alpaca)
    bars = source.fetch(["AAPL", "MSFT", "SPY"], M1, T0, T0 + timedelta(minutes=40))
    assert {s: len(b) for s, b in bars.items()} == {"AAPL": 40, "MSFT": 40, "SPY": 40}
    np.testing.assert_array_equal(bars["MSFT"].close, 200 + np.arange(40.0))
    assert bars["SPY"].time[0] == int(T0.timestamp()) * NS
    calls = alpaca.requests_to("GET", "/v2/stocks/bars")
    assert len(calls) == 3  # 120 bars in pages of 50: one request, its pages followed
    assert all(c.query["symbols"] == "AAPL,MSFT,SPY" for c in calls)
    assert [c.query.get("page_token") for c in calls] == [None, "50", "100"]
    first = calls[0].query
    assert first["feed"] == "iex" and first["timeframe"] == "1Min"
    assert first["start"].endswith("Z") or "+00:00" in first["start"]  # always an aware start
    assert source.requests == 1


def test_end_is_exclusive(alpaca):
    alpaca.set_bars("AAPL", ramp(10))
    bars = source_for(alpaca).fetch(["AAPL"], M1, T0, T0 + timedelta(minutes=5))
    assert len(bars["AAPL"]) == 5  # Alpaca's end is inclusive: the bar starting at `end` is dropped


def test_crypto_bars_are_batched_on_the_crypto_endpoint(alpaca):
    alpaca.set_bars("BTC/USD", ramp(30, base=50_000))
    alpaca.set_bars("ETH/USD", ramp(30, base=3_000))
    alpaca.set_bars("AAPL", ramp(30))
    bars = source_for(alpaca).fetch(["BTC/USD", "ETH/USD", "AAPL"], M1, T0, T0 + timedelta(hours=1))
    assert set(bars) == {"BTC/USD", "ETH/USD", "AAPL"}
    crypto = alpaca.requests_to("GET", "/v1beta3/crypto/us/bars")
    assert len(crypto) == 2 and crypto[0].query["symbols"] == "BTC/USD,ETH/USD"
    assert "feed" not in crypto[0].query
    assert bars["BTC/USD"].close[-1] == 50_029.0


@pytest.mark.parametrize(
    ("label", "wire"),
    [("1m", "1Min"), ("5m", "5Min"), ("15m", "15Min"), ("1h", "1Hour"), ("4h", "4Hour"), ("1d", "1Day")],
)
def test_timeframes_map_to_alpaca(alpaca, label, wire):
    assert alpaca_timeframe(Timeframe.parse(label)).value == wire
    source_for(alpaca).fetch(["AAPL"], Timeframe.parse(label), T0, T0 + timedelta(days=2))
    assert alpaca.requests_to("GET", "/v2/stocks/bars")[-1].query["timeframe"] == wire


def test_unsupported_timeframe_is_a_clear_error():
    with pytest.raises(DataError, match="1m-59m"):
        alpaca_timeframe(Timeframe.parse("2d"))


def test_naive_window_is_refused(alpaca):
    with pytest.raises(DataError, match="timezone-aware"):
        source_for(alpaca).fetch(["AAPL"], M1, datetime(2026, 1, 5), T0)


def test_outage_is_a_data_error_after_bounded_retries(alpaca):
    alpaca.data_outage = True
    source = source_for(alpaca)
    with pytest.raises(DataError, match="503"):
        source.fetch(["AAPL"], M1, T0, T0 + timedelta(minutes=5))
    assert len(alpaca.requests_to("GET", "/v2/stocks/bars")) == 3


def test_wrong_keys_on_data_say_what_to_check(alpaca):
    source = AlpacaBarSource.create("test-key", "bad", url=alpaca.url, sleep=lambda s: None)
    with pytest.raises(DataError, match="ALPACA_API_KEY"):
        source.fetch(["AAPL"], M1, T0, T0 + timedelta(minutes=5))
    assert len(alpaca.requests_to("GET", "/v2/stocks/bars")) == 1  # not retried


def test_latest_prices(alpaca):
    alpaca.set_bars("AAPL", ramp(3))
    alpaca.set_bars("BTC/USD", ramp(3, base=50_000))
    assert source_for(alpaca).latest_prices(["AAPL", "BTC/USD"]) == {"AAPL": 102.0, "BTC/USD": 50_002.0}


def test_polygon_aggregates_with_paging_and_the_key_in_a_header(polygon):
    polygon.set_bars("AAPL", ramp(60))
    polygon.set_bars("X:BTCUSD", ramp(60, base=50_000))
    source = PolygonBarSource("poly-key", base_url=polygon.url, sleep=lambda s: None)
    bars = source.fetch(["AAPL", "BTC/USD"], M1, T0, T0 + timedelta(minutes=50))
    assert len(bars["AAPL"]) == 50 and len(bars["BTC/USD"]) == 50
    np.testing.assert_array_equal(bars["BTC/USD"].close, 50_000 + np.arange(50.0))
    paths = [p for p, _, _ in polygon.requests]
    assert paths[0].startswith("/v2/aggs/ticker/AAPL/range/1/minute/")
    assert any(p.startswith("/v2/aggs/ticker/X:BTCUSD/range/1/minute/") for p in paths)
    assert len(paths) == 4  # two pages each, through next_url
    assert all(auth == "Bearer poly-key" for _, _, auth in polygon.requests)
    assert all("apiKey" not in q for _, q, _ in polygon.requests)  # never in a URL (logs)


def test_polygon_wrong_key(polygon):
    source = PolygonBarSource("bad", base_url=polygon.url, sleep=lambda s: None)
    with pytest.raises(DataError, match="POLYGON_API_KEY"):
        source.fetch(["AAPL"], M1, T0, T0 + timedelta(minutes=5))


def test_fallback_serves_from_polygon_when_alpaca_data_fails(alpaca, polygon):
    alpaca.data_outage = True
    polygon.set_bars("AAPL", ramp(30))
    polygon.set_bars("X:BTCUSD", ramp(30, base=50_000))
    source = FallbackSource(source_for(alpaca), PolygonBarSource("poly-key", base_url=polygon.url))
    bars = source.fetch(["AAPL", "BTC/USD"], M1, T0, T0 + timedelta(minutes=30))
    assert set(bars) == {"AAPL", "BTC/USD"} and len(bars["AAPL"]) == 30
    assert source.served == {"AAPL": "polygon", "BTC/USD": "polygon"}


def test_fallback_asks_only_for_what_the_primary_left_out(alpaca, polygon):
    alpaca.set_bars("AAPL", ramp(30))
    polygon.set_bars("MSFT", ramp(30, base=300))
    source = FallbackSource(source_for(alpaca), PolygonBarSource("poly-key", base_url=polygon.url))
    bars = source.fetch(["AAPL", "MSFT"], M1, T0, T0 + timedelta(minutes=30))
    assert source.served == {"AAPL": "alpaca", "MSFT": "polygon"}
    assert bars["MSFT"].close[0] == 300.0
    assert all("/MSFT/" in p for p, _, _ in polygon.requests)


def test_fallback_failing_too_is_a_data_error_never_synthetic(alpaca, polygon):
    alpaca.data_outage = True
    polygon.status = 503
    source = FallbackSource(
        source_for(alpaca), PolygonBarSource("poly-key", base_url=polygon.url, sleep=lambda s: None)
    )
    with pytest.raises(DataError, match=r"alpaca failed .* polygon failed"):
        source.fetch(["AAPL"], M1, T0, T0 + timedelta(minutes=30))


def test_history_cache_fetches_only_new_bars_in_one_batched_request():
    with FakeAlpaca() as alpaca:  # Alpaca's page size: 10,000 bars
        _cache_round_trip(alpaca)


def _cache_round_trip(alpaca: FakeAlpaca) -> None:
    symbols = [f"S{i:02d}" for i in range(20)]
    for symbol in symbols:
        alpaca.set_bars(symbol, ramp(120))
    cache = HistoryCache(source_for(alpaca), M1, 100)
    now = T0 + timedelta(minutes=100, seconds=5)
    first = cache.update(symbols, now)
    assert not first.errors and all(len(b) == 100 for b in first.bars.values())
    calls = alpaca.requests_to("GET", "/v2/stocks/bars")
    assert len(calls) == 1  # 2,000 bars, one request, one page
    cache.update(symbols, now + timedelta(minutes=1))
    new = alpaca.requests_to("GET", "/v2/stocks/bars")[1:]
    assert len(new) == 1 and new[0].query["start"].startswith("2026-01-05T16:09:00")  # the last bar again


@pytest.mark.parametrize("day_tz", ["America/Chicago", "UTC"])
def test_a_forming_crypto_day_bar_is_never_cached(alpaca, day_tz):
    """Alpaca's crypto day starts at midnight US/Central (alpaca-py#169) or, reportedly since
    2025, UTC (lumibot#826): either way only bars whose day has ended reach the strategies."""
    alpaca.crypto_day_tz = day_tz
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [(int((start + timedelta(hours=h)).timestamp()) * NS, 1, 2, 0.5, 1.5, 1) for h in range(24 * 6)]
    alpaca.set_bars("BTC/USD", rows)
    now = datetime(2026, 1, 6, 3, 0, tzinfo=UTC)  # 21:00 the day before in Chicago
    alpaca.clock.set(now)
    cache = HistoryCache(source_for(alpaca), Timeframe.parse("1d"), 10)
    bars = cache.update(["BTC/USD"], now).bars["BTC/USD"]
    day = 86_400 * NS
    assert all(t + day <= int(now.timestamp()) * NS for t in bars.time)  # every cached day has ended
    expected_last = "2026-01-04T06:00:00" if day_tz != "UTC" else "2026-01-05T00:00:00"
    assert bars.last_time().isoformat().startswith(expected_last)


def test_polygon_5xx_is_retried_on_the_retry_policy(polygon):
    polygon.set_bars("AAPL", ramp(10))
    polygon.failures = [503, 502]
    waits: list[float] = []
    source = PolygonBarSource("poly-key", base_url=polygon.url, sleep=waits.append)
    bars = source.fetch(["AAPL"], M1, T0, T0 + timedelta(minutes=10))
    assert len(bars["AAPL"]) == 10 and source.requests == 3
    assert len(waits) == 2 and POLYGON_READS.base <= waits[0] < waits[1] <= POLYGON_READS.cap * 1.25


def test_polygon_rate_limit_fails_within_the_stall_budget(polygon):
    """Polygon's free plan: 5 requests a minute, then 429 without any reset header. A minute
    cannot be waited out within 15 s: the fetch fails after the policy's tries, never stalling."""
    polygon.set_bars("AAPL", ramp(10))
    polygon.rate_limit = 0
    waits: list[float] = []
    source = PolygonBarSource("poly-key", base_url=polygon.url, sleep=waits.append)
    with pytest.raises(DataError, match="429"):
        source.fetch(["AAPL"], M1, T0, T0 + timedelta(minutes=10))
    assert source.requests == POLYGON_READS.attempts
    assert sum(waits) <= POLYGON_READS.budget


def test_polygon_retry_after_is_honoured_when_sent(polygon):
    polygon.set_bars("AAPL", ramp(10))
    polygon.rate_limit, polygon.retry_after = 0, "6"
    waits: list[float] = []
    source = PolygonBarSource("poly-key", base_url=polygon.url, sleep=waits.append)
    with pytest.raises(DataError):
        source.fetch(["AAPL"], M1, T0, T0 + timedelta(minutes=10))
    assert waits == [6.0, 6.0]  # the server's wait, not the policy's 1 s and 2 s


# ------------------------------------------------------------------ splits (adjustment=split)

FRIDAY = datetime(2026, 1, 9, 14, 30, tzinfo=UTC)  # 09:30 in New York
MONDAY = datetime(2026, 1, 12, 14, 30, tzinfo=UTC)


def flat(start: datetime, n: int, price: float) -> list[tuple]:
    """``n`` minute rows from ``start``, every price ``price`` (a close a little above the open)."""
    first = int(start.timestamp())
    return [((first + 60 * i) * NS, price, price + 0.5, price - 0.5, price + 0.25, 1000.0) for i in range(n)]


def split_market(server) -> None:
    """AAPL around 400 all Friday, a 4-for-1 split effective Monday, then around 100."""
    server.set_bars("AAPL", flat(FRIDAY, 390, 400.0) + flat(MONDAY, 30, 100.0))
    server.add_split("AAPL", MONDAY.date(), 4.0)


def test_stock_bars_are_asked_split_adjusted(alpaca):
    """Raw bars (Alpaca's default) show a 75 % crash at Monday's open that never traded."""
    split_market(alpaca)
    alpaca.clock.set(MONDAY + timedelta(minutes=31))
    window = (FRIDAY + timedelta(hours=6), MONDAY + timedelta(minutes=30))
    bars = source_for(alpaca).fetch(["AAPL"], M1, *window)["AAPL"]
    assert alpaca.requests_to("GET", "/v2/stocks/bars")[0].query["adjustment"] == "split"
    assert np.allclose(bars.close, 100.2, atol=0.2)  # Friday's 400.25 is 100.0625 in Monday's shares
    raw = requests_get(
        alpaca, "/v2/stocks/bars", symbols="AAPL", timeframe="1Min", start="2026-01-09T20:00:00Z"
    )
    assert raw["bars"]["AAPL"][0]["c"] == 400.25  # the fake's raw bars do not match


def test_a_split_rereads_the_symbols_cached_window(alpaca):
    """The cache holds Friday at 400; on Monday the source serves Friday at 100 (split-adjusted):
    the last cached bar, asked again, shows it, and the whole window is read again."""
    alpaca.set_bars("AAPL", flat(FRIDAY, 390, 400.0))
    cache = HistoryCache(source_for(alpaca), M1, 300)
    alpaca.clock.set(FRIDAY + timedelta(hours=6, minutes=35))
    first = cache.update(["AAPL"], FRIDAY + timedelta(hours=6, minutes=35)).bars["AAPL"]
    assert len(first) == 295 and np.allclose(first.close, 400.25)  # 16:05 to 20:59 UTC
    split_market(alpaca)  # Monday: the split is effective, Alpaca's split bars rescale Friday
    asked = len(alpaca.requests_to("GET", "/v2/stocks/bars"))
    now = MONDAY + timedelta(minutes=10, seconds=5)
    alpaca.clock.set(now)
    result = cache.update(["AAPL"], now)
    bars = result.bars["AAPL"]
    assert not result.errors and np.allclose(bars.close, 100.2, atol=0.2)  # no crash that never traded
    assert len(bars) == 300 and bars.last_time() == MONDAY + timedelta(minutes=9)  # 290 + 10
    monday = alpaca.requests_to("GET", "/v2/stocks/bars")[asked:]
    starts = [r.query["start"][:16] for r in monday if not r.query.get("page_token")]
    # the last cached bar on its own (the weekend outgrew the window), then the cached window read
    # again from its first bar, up to now
    assert starts == ["2026-01-09T20:59", "2026-01-09T16:05"]


def test_polygon_serves_the_same_split_adjusted_bars_as_alpaca(alpaca, polygon):
    split_market(alpaca)
    polygon.set_bars("AAPL", Bars(*zip(*flat(FRIDAY, 390, 400.0) + flat(MONDAY, 30, 100.0), strict=True)))
    polygon.add_split("AAPL", MONDAY.date(), 4.0)
    alpaca.clock.set(MONDAY + timedelta(minutes=31))
    window = (FRIDAY + timedelta(hours=6), MONDAY + timedelta(minutes=30))
    from_alpaca = source_for(alpaca).fetch(["AAPL"], M1, *window)["AAPL"]
    from_polygon = PolygonBarSource("poly-key", base_url=polygon.url).fetch(["AAPL"], M1, *window)["AAPL"]
    assert polygon.requests[0][1]["adjusted"] == "true"
    np.testing.assert_array_equal(from_polygon.time, from_alpaca.time)
    np.testing.assert_allclose(from_polygon.close, from_alpaca.close)
    np.testing.assert_allclose(from_polygon.volume, from_alpaca.volume)


def requests_get(server, path: str, **params: str) -> dict:
    import requests

    headers = {"APCA-API-KEY-ID": "test-key", "APCA-API-SECRET-KEY": "test-secret"}
    return requests.get(f"{server.url}{path}", params=params, headers=headers, timeout=5).json()
