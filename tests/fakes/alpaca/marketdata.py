"""The fake's market data REST API: bars (stocks and crypto) and latest trades.

Bars are aggregated from the rows a test set (``market.aggregate``: Alpaca's bucket boundaries, a
bar still forming served with the rows so far). Besides, modelled here:

- **Bars outside regular hours exist.** A stock's rows are served whatever their hour: Alpaca's
  bars hold pre-market and after-hours trades and no parameter leaves them out
  (alpaca-py#580, "Alpaca's API will return all hourly bars (including extended hours)", and the
  maintainers: "Currently server side is not supporting this feature"; alpaca-trade-api-python
  #552 and #480: "the get_bars method ... is sending bars from a time where the market already
  got closed"). Hour bars are on UTC hours, so the 09:00-10:00 ET bar mixes both sessions.
- **A just-closed bar appears only some seconds later.** A row counts once its minute has ended
  and ``bar_delay`` seconds (3 by default) have passed: alpaca.markets/learn "Stock Minute Bars"
  (quoted in Petersoj/alpaca-java#166): "Bars are calculated, and available, 1 second after the
  close of each minute (eg the 9:31 bar is calculated at 9:32:01)"; blankly-finance/blankly#189
  saw the just-completed minute only after "1-3 seconds". (Alpaca recalculates each minute bar
  30 seconds later with late trades, Alpaca-API#281: not modelled.)
- **``adjustment``** (alpaca-docs ``stock-pricing-data/historical.md``: "Specifies the corporate
  action adjustment for the returned bars. Options are: 'raw', 'split', 'dividend' or 'all'.
  Default value is 'raw'"; docs.alpaca.markets changelog 2026-11-02: a comma-separated list of
  raw, split, dividend, spin-off, all, "unknown, empty, and repeated values still return 400").
  ``add_split(symbol, ex_date, ratio)`` records a split; with ``split`` (or ``all``) asked, rows
  before the ex-date's midnight (New York) have their prices divided by ``ratio`` and their
  volume multiplied by it; otherwise they are served as traded (no dividends or spin-offs are
  modelled). Crypto takes no ``adjustment`` (400).
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from tests.fakes.alpaca.market import NEW_YORK, Row, aggregate
from tests.fakes.alpaca.orders import iso

if TYPE_CHECKING:
    from tests.fakes.alpaca.server import FakeAlpaca

ADJUSTMENTS = ("raw", "split", "dividend", "spin-off", "all")


@functools.lru_cache(maxsize=65_536)
def _stamp(when: datetime) -> str:
    """RFC 3339 as Alpaca writes it; once per bar start, however many symbols share it."""
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def computed(rows: list[Row], now: datetime, delay: float) -> list[Row]:
    """The rows whose minute ended at least ``delay`` seconds before ``now``."""
    cutoff = now.timestamp() - delay
    return [r for r in rows if (r[0] // 60_000_000_000) * 60 + 60 <= cutoff]


def adjusted(rows: list[Row], splits: list[tuple[date, float]]) -> list[Row]:
    """``rows`` with every split applied to what came before its ex-date."""
    for ex_date, ratio in splits:
        cut = int(datetime.combine(ex_date, time(0), NEW_YORK).timestamp()) * 1_000_000_000
        rows = [
            (t, o / ratio, h / ratio, low / ratio, c / ratio, v * ratio) if t < cut else (t, o, h, low, c, v)
            for t, o, h, low, c, v in rows
        ]
    return rows


def bars(fake: FakeAlpaca, path: str, query: dict[str, str]) -> tuple[int, Any]:
    now = fake.clock.now()
    symbols = [s for s in query.get("symbols", "").split(",") if s]
    start = parse_time(query["start"]) if query.get("start") else None
    end = parse_time(query["end"]) if query.get("end") else None
    limit = min(int(query.get("limit") or fake.page_size), fake.page_size)
    offset = int(query.get("page_token") or 0)
    crypto = path.startswith("/v1beta3/crypto/")
    adjustment = query.get("adjustment", "raw").split(",")
    if crypto and "adjustment" in query:
        return 400, {"message": "adjustment is not supported for crypto"}
    if any(a not in ADJUSTMENTS for a in adjustment) or len(set(adjustment)) != len(adjustment):
        return 400, {"message": f"invalid adjustment: {query.get('adjustment')}"}
    day_tz = ZoneInfo(fake.crypto_day_tz) if crypto else NEW_YORK
    # Every page of one query reads the same rows: worked out once, not once a page (a 500-symbol
    # cold fetch is 14 pages of 10,000 bars; aggregating all of them for each page took 0.4 s).
    asked = {k: v for k, v in query.items() if k not in ("page_token", "limit")}
    key = (path, tuple(sorted(asked.items())), now, fake.bar_delay, fake.crypto_day_tz, fake.bars_version)
    with fake.lock:
        out_rows = fake.bars_answers.get(key)
        if out_rows is None:
            out_rows = []
            for symbol in sorted(symbols):
                rows = computed(fake.bars.get(symbol, []), now, fake.bar_delay)
                if {"split", "all"} & set(adjustment):
                    rows = adjusted(rows, fake.splits.get(symbol, []))
                for t, o, h, low, c, v in aggregate(
                    rows, query.get("timeframe", "1Min"), day_tz=day_tz, now=now
                ):
                    if (start is None or t >= start) and (end is None or t <= end):
                        stamp = _stamp(t)
                        bar = {"t": stamp, "o": o, "h": h, "l": low, "c": c, "v": v, "n": 1, "vw": c}
                        out_rows.append((symbol, bar))
            fake.bars_answers.clear()  # one query's pages at a time: memory stays one answer
            fake.bars_answers[key] = out_rows
    page = out_rows[offset : offset + limit]
    out: dict[str, list[dict[str, Any]]] = {}
    for symbol, bar in page:
        out.setdefault(symbol, []).append(bar)
    token = str(offset + limit) if offset + limit < len(out_rows) else None
    return 200, {"bars": out, "next_page_token": token}


def answer(fake: FakeAlpaca, path: str, query: dict[str, str]) -> tuple[int, Any]:
    if path.endswith("/bars"):
        return bars(fake, path, query)
    if path.endswith(("/trades/latest", "/latest/trades")):
        now = fake.clock.now()
        symbols = [s for s in query.get("symbols", "").split(",") if s]
        with fake.lock:
            trades = {
                s: {"t": iso(now), "x": "V", "p": fake.last_price(s), "s": 1, "c": [], "i": 1, "z": "C"}
                for s in symbols
                if s in fake.bars or s in fake.prices
            }
        return 200, {"trades": trades}
    return 404, {"message": "not found"}
