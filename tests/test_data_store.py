"""History kept locally (issue 20 section 4): the Parquet store, ``fill`` fetching only what it
lacks, ``tradebot data download|update|list`` and offline backtests, against the fake Alpaca
server through the real alpaca-py clients."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from bot.bars import NS, Bars, Timeframe
from bot.data.download import fill, settled_until
from bot.data.fallback import FallbackSource
from bot.data.store import SETTLE, BarStore, Span, StoreError, to_ns
from bot.data.synthetic import SyntheticMarket
from tests.fakes.alpaca import FakeAlpaca

ROOT = Path(__file__).resolve().parents[1]
M1, H1 = Timeframe(60), Timeframe(3600)
NOW = datetime(2025, 7, 1, 12, 0, tzinfo=UTC)


class Recording:
    """A bar source over the synthetic market that records every window it is asked for;
    ``scale`` multiplies its prices (a split-adjusted source after a 2-for-1 split: 0.5)."""

    def __init__(
        self,
        name: str = "recording",
        *,
        scale: float = 1.0,
        only: set[str] | None = None,
        adjustment: str = "raw",
    ) -> None:
        self.name = name
        self.market = SyntheticMarket()
        self.windows: list[tuple[datetime, datetime]] = []
        self.scale = scale
        self.only = only
        self.adjustment = adjustment

    def fetch(self, symbols, timeframe, start, end):
        self.windows.append((start, end))
        out = self.market.fetch(
            [s for s in symbols if self.only is None or s in self.only], timeframe, start, end
        )
        if self.scale != 1.0:
            out = {
                s: Bars(
                    b.time,
                    b.open * self.scale,
                    b.high * self.scale,
                    b.low * self.scale,
                    b.close * self.scale,
                    b.volume,
                )
                for s, b in out.items()
            }
        return out


def day(n: int) -> datetime:
    return datetime(2025, 6, n, tzinfo=UTC)


# ------------------------------------------------------------------------------ the store


def test_coverage_not_bars_decides_what_is_missing(tmp_path):
    store = BarStore(tmp_path)
    bars = SyntheticMarket().fetch(["AAPL"], H1, day(2), day(4))["AAPL"]
    store.write("AAPL", H1, bars, [Span(to_ns(day(1)), to_ns(day(4)), "alpaca")])
    later = SyntheticMarket().fetch(["AAPL"], H1, day(6), day(7))["AAPL"]
    store.write("AAPL", H1, later, [Span(to_ns(day(6)), to_ns(day(7)), "polygon")])

    dataset = store.dataset("AAPL", H1)
    assert dataset is not None and dataset.bars == len(bars) + len(later)
    # day 1 was asked for (and had no bars): covered; days 4-6 were never asked: the one gap
    assert dataset.missing(to_ns(day(1)), to_ns(day(7))) == [(to_ns(day(4)), to_ns(day(6)))]
    assert dataset.missing(to_ns(day(1)), to_ns(day(8))) == [
        (to_ns(day(4)), to_ns(day(6))),
        (to_ns(day(7)), to_ns(day(8))),
    ]
    assert dataset.sources() == ["alpaca", "polygon"]
    window = store.read("AAPL", H1, to_ns(day(3)), to_ns(day(7)))
    assert window.time[0] == to_ns(day(3)) and window.time[-1] == to_ns(day(7)) - 3600 * NS
    assert np.array_equal(store.read("AAPL", H1).close, np.r_[bars.close, later.close])
    assert not list(tmp_path.glob("AAPL/.*.tmp")), "no temporary file is left behind"


def test_a_fetched_bar_replaces_the_stored_one_and_files_never_mix_kinds(tmp_path):
    store = BarStore(tmp_path)
    bars = SyntheticMarket().fetch(["AAPL"], H1, day(2), day(3))["AAPL"]
    span = [Span(to_ns(day(2)), to_ns(day(3)), "alpaca")]
    store.write("AAPL", H1, bars, span, adjustment="split", feed="iex")
    halved = Bars(bars.time, bars.open / 2, bars.high / 2, bars.low / 2, bars.close / 2, bars.volume)
    store.write(
        "AAPL",
        H1,
        halved[:5],
        [Span(int(bars.time[0]), int(bars.time[5]), "alpaca")],
        adjustment="split",
        feed="iex",
    )
    stored = store.read("AAPL", H1)
    assert len(stored) == len(bars)
    assert np.array_equal(stored.close[:5], bars.close[:5] / 2) and np.array_equal(
        stored.close[5:], bars.close[5:]
    )

    with pytest.raises(
        StoreError, match=r"holds split-adjusted iex bars; these are unadjusted iex bars: refusing to mix"
    ):
        store.write("AAPL", H1, bars, span, adjustment="raw", feed="iex")


def test_a_damaged_file_is_one_line_naming_it(tmp_path):
    store = BarStore(tmp_path)
    path = store.path("BTC/USD", M1)
    assert path == tmp_path / "BTC-USD" / "1m.parquet"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not parquet at all")
    with pytest.raises(StoreError) as caught:
        store.dataset("BTC/USD", M1)
    assert str(path) in str(caught.value) and "delete it" in str(caught.value)
    assert "\n" not in str(caught.value)


# ------------------------------------------------------------------------------ fill


def test_fill_fetches_only_what_the_store_lacks(tmp_path):
    store, source = BarStore(tmp_path), Recording()
    first, report = fill(store, source, "AAPL", H1, day(2), day(5), now=NOW)
    assert report.requests == 1 and len(first) == 72
    again, report = fill(store, source, "AAPL", H1, day(2), day(5), now=NOW)
    assert report.requests == 0, "the same window again needs no network"
    assert np.array_equal(again.time, first.time) and np.array_equal(again.close, first.close)

    source.windows.clear()
    wider, report = fill(store, source, "AAPL", H1, day(1), day(7), now=NOW)
    assert source.windows == [(day(1), day(2)), (day(5), day(7))], "only the two edges are asked for"
    direct = SyntheticMarket().fetch(["AAPL"], H1, day(1), day(7))["AAPL"]
    assert np.array_equal(wider.time, direct.time) and np.array_equal(wider.close, direct.close)


def test_bars_of_the_last_minutes_are_served_but_never_stored(tmp_path):
    store, source = BarStore(tmp_path), Recording()
    now = datetime(2025, 7, 1, 12, 0, 30, tzinfo=UTC)
    bars, _ = fill(store, source, "AAPL", M1, now - timedelta(hours=2), now, now=now)
    assert bars.time[-1] == to_ns(datetime(2025, 7, 1, 11, 59, tzinfo=UTC)), (
        "the last closed bar, not the forming one"
    )
    dataset = store.dataset("AAPL", M1)
    assert dataset is not None
    assert dataset.covered()[-1][1] == settled_until(M1, now) <= to_ns(now - SETTLE) - 60 * NS
    assert dataset.last is not None and dataset.last < settled_until(M1, now)
    source.windows.clear()
    fill(store, source, "AAPL", M1, now - timedelta(hours=2), now, now=now)
    assert len(source.windows) == 1 and source.windows[0][0] >= now - SETTLE - timedelta(minutes=1)


def test_a_split_makes_the_stored_history_be_fetched_again(tmp_path):
    store = BarStore(tmp_path)
    before = Recording(adjustment="split")
    old, _ = fill(store, before, "AAPL", H1, day(2), day(4), now=NOW)
    after_split = Recording(scale=0.5, adjustment="split")  # the source now prices all history at half
    bars, report = fill(store, after_split, "AAPL", H1, day(2), day(6), now=NOW)
    assert report.readjusted and any("fetched again" in note for note in report.notes)
    assert np.allclose(bars.close[: len(old)], old.close / 2), "no stale pre-split price is left"
    assert np.allclose(store.read("AAPL", H1).close, bars.close)


def test_crypto_history_is_never_refetched_for_adjustment(tmp_path):
    store = BarStore(tmp_path)
    fill(store, Recording(adjustment="split"), "BTC/USD", H1, day(2), day(4), now=NOW)
    _, report = fill(store, Recording(scale=0.5, adjustment="split"), "BTC/USD", H1, day(2), day(6), now=NOW)
    assert not report.readjusted and report.requests == 1


def test_the_fallback_source_is_recorded_per_span(tmp_path):
    store = BarStore(tmp_path)
    primary, fallback = Recording("alpaca", only={"MSFT"}), Recording("polygon")
    fill(store, FallbackSource(primary, fallback), "AAPL", H1, day(2), day(4), now=NOW)
    fill(store, FallbackSource(Recording("alpaca"), fallback), "AAPL", H1, day(4), day(5), now=NOW)
    dataset = store.dataset("AAPL", H1)
    assert dataset is not None
    assert [(s.source) for s in dataset.coverage] == ["polygon", "alpaca"]


# ------------------------------------------------------------------------------ the commands


def tradebot(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )


@pytest.fixture
def fake():
    with FakeAlpaca() as server:
        yield server


def recent_window() -> tuple[datetime, datetime]:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=6), today - timedelta(days=2)


def serve_bars(fake: FakeAlpaca, start: datetime, end: datetime) -> dict[str, Bars]:
    bars = SyntheticMarket().fetch(["AAPL", "BTC/USD"], M1, start, end)
    for symbol, rows in bars.items():
        fake.set_bars(symbol, rows)
    return bars


def test_download_list_update_and_the_gaps_between(fake, tmp_path):
    start, end = recent_window()
    served = serve_bars(fake, start, end)
    env = {
        "ALPACA_API_KEY": "test-key",
        "ALPACA_API_SECRET": "test-secret",
        "ALPACA_DATA_URL": fake.url,
        "TRADEBOT_DATA_DIR": str(tmp_path / "store"),
    }
    first = tradebot(
        tmp_path, env, "data", "download", "--symbols", "AAPL,BTC/USD", "--timeframe", "1m",
        "--start", f"{start:%Y-%m-%d}", "--end", f"{start + timedelta(days=1):%Y-%m-%d}",
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    later = tradebot(
        tmp_path, env, "data", "download", "--symbols", "AAPL,BTC/USD", "--timeframe", "1m",
        "--start", f"{start + timedelta(days=2):%Y-%m-%d}", "--end", f"{end:%Y-%m-%d}",
    )  # fmt: skip
    assert later.returncode == 0, later.stderr
    store = BarStore(tmp_path / "store")
    for symbol in ("AAPL", "BTC/USD"):
        stored = store.read(symbol, M1)
        expected = served[symbol]
        in_windows = (expected.time < to_ns(start + timedelta(days=1))) | (
            expected.time >= to_ns(start + timedelta(days=2))
        )
        assert np.array_equal(stored.time, expected.time[in_windows]), symbol
        assert np.array_equal(stored.close, expected.close[in_windows]), symbol

    listing = tradebot(tmp_path, env, "data", "list")
    assert listing.returncode == 0, listing.stderr
    rows = {line.split()[0]: line for line in listing.stdout.splitlines() if line.startswith("  ")}
    assert set(rows) == {"symbol", "AAPL", "BTC/USD"}
    gap = f"{start + timedelta(days=1):%Y-%m-%d} to {start + timedelta(days=2):%Y-%m-%d}"
    for symbol in ("AAPL", "BTC/USD"):
        assert f"{store.dataset(symbol, M1).bars:,}" in rows[symbol]
        assert f"1: {gap}" in rows[symbol], rows[symbol]
    # what kind of bars each file holds: stocks as the live bot asks for them, crypto unadjusted
    assert " split/iex " in rows["AAPL"] and " raw " in rows["BTC/USD"]

    again = tradebot(
        tmp_path, env, "data", "download", "--symbols", "AAPL", "--timeframe", "1m",
        "--start", f"{start:%Y-%m-%d}", "--end", f"{start + timedelta(days=1):%Y-%m-%d}",
    )  # fmt: skip
    assert again.returncode == 0 and "AAPL 1m: nothing to fetch" in again.stdout

    before = len(fake.requests_to("GET", "/v2/stocks/bars"))
    update = tradebot(tmp_path, env, "data", "update", "--symbols", "AAPL")
    assert update.returncode == 0, update.stderr
    asked = fake.requests_to("GET", "/v2/stocks/bars")[before:]
    starts = sorted(r.query["start"][:10] for r in asked)
    assert f"{start + timedelta(days=1):%Y-%m-%d}" in starts, "the gap is filled"
    assert all(s >= f"{start + timedelta(days=1):%Y-%m-%d}" for s in starts), "nothing stored is asked again"
    stored = store.read("AAPL", M1)
    assert np.array_equal(stored.time, served["AAPL"].time), "after the update the store holds every bar"
    assert "gaps" in tradebot(tmp_path, env, "data", "list").stdout


def test_a_backtest_reads_the_store_and_needs_no_network_the_second_time(fake, tmp_path):
    start, end = recent_window()
    serve_bars(fake, start, end)
    store = str(tmp_path / "store")
    env = {"ALPACA_API_KEY": "test-key", "ALPACA_API_SECRET": "test-secret", "TRADEBOT_DATA_DIR": store}
    window = (
        "--symbol",
        "BTC/USD",
        "--start",
        f"{start:%Y-%m-%d}",
        "--end",
        f"{end:%Y-%m-%d}",
        "--timeframe",
        "1m",
    )
    url = fake.url
    online = tradebot(
        tmp_path,
        {**env, "ALPACA_DATA_URL": url},
        "backtest",
        "--strategy",
        "supertrend",
        *window,
        "--json",
        "a.json",
    )
    assert online.returncode == 0, online.stderr
    fake.stop()  # nothing answers there any more
    dead = {**env, "ALPACA_DATA_URL": url}
    offline = tradebot(tmp_path, dead, "backtest", "--strategy", "supertrend", *window, "--json", "b.json")
    assert offline.returncode == 0, offline.stderr
    a, b = (json.loads((tmp_path / name).read_text()) for name in ("a.json", "b.json"))
    assert a["n_trades"] > 0 and a == b
    bypass = tradebot(tmp_path, dead, "backtest", "--strategy", "supertrend", *window, "--no-store")
    assert bypass.returncode != 0 and "Alpaca" in bypass.stderr, "without the store the network is needed"


def test_data_commands_refuse_bad_input_in_one_line(tmp_path):
    env = {"ALPACA_API_KEY": "", "ALPACA_API_SECRET": "", "TRADEBOT_DATA_DIR": str(tmp_path / "s")}
    cases = [
        (("data", "download", "--symbols", "AAPL", "--start", "2024-01-01"), "set ALPACA_API_KEY"),
        (("data", "download", "--symbols", "AAPL,aapl", "--start", "2024-01-01"), "AAPL is given twice"),
        (("data", "download", "--symbols", "NOT A SYMBOL", "--start", "2024-01-01"), "is not a symbol"),
        (("data", "download", "--symbols", "AAPL", "--start", "yesterday"), "is not a date"),
        (
            ("data", "download", "--symbols", "AAPL", "--start", "2024-02-01", "--end", "2024-01-01"),
            "is not after",
        ),
        (("data", "update"), "nothing stored in"),
    ]
    for args, message in cases:
        result = tradebot(tmp_path, env, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, (
            args,
            result.stderr,
        )
        assert "Traceback" not in result.stderr
    listing = tradebot(tmp_path, env, "data", "list")
    assert listing.returncode == 0 and "nothing stored" in listing.stdout


def test_a_long_download_shows_its_progress(fake, tmp_path):
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=25)
    env = {
        "ALPACA_API_KEY": "test-key",
        "ALPACA_API_SECRET": "test-secret",
        "ALPACA_DATA_URL": fake.url,
        "TRADEBOT_DATA_DIR": str(tmp_path / "store"),
    }
    args = ("data", "download", "--symbols", "ETH/USD", "--timeframe", "1m", "--start", f"{start:%Y-%m-%d}")
    shown = tradebot(tmp_path, env, *args, "--progress")
    assert shown.returncode == 0, shown.stderr
    assert "download: 100%" in shown.stderr and "4/4 [" in shown.stderr, shown.stderr  # 25 days: 4 windows
    assert shown.stdout.startswith("ETH/USD 1m: fetched 0 bars in 5 requests (alpaca); no bars stored")
