"""A primary bar source with a fallback: Alpaca first, Polygon for what Alpaca could not serve.

Only real market data is ever served. When the primary fails as a whole (``DataError``), the
fallback is asked for every symbol; when it answers but leaves symbols out, the fallback is asked
for those. Each fetch logs which source served which symbols (``served`` keeps the last answer)
so an alert can say where the data came from. When both fail, ``DataError`` carries both reasons.

A symbol the fallback had nothing for either (a stock over the weekend) is not asked of the
fallback again for ``quiet_seconds``, so a closed market does not spend Polygon's rate limit.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from bot.bars import Bars, Timeframe
from bot.data.base import BarSource, DataError

log = logging.getLogger(__name__)


class FallbackSource:
    def __init__(self, primary: BarSource, fallback: BarSource, *, quiet_seconds: float = 300.0) -> None:
        self.primary = primary
        self.fallback = fallback
        self.name = f"{primary.name}+{fallback.name}"
        self.quiet_seconds = quiet_seconds
        self.served: dict[str, str] = {}
        self._quiet_until: dict[str, float] = {}

    def fetch(
        self, symbols: list[str], timeframe: Timeframe, start: datetime, end: datetime
    ) -> dict[str, Bars]:
        primary_error: DataError | None = None
        try:
            result = dict(self.primary.fetch(symbols, timeframe, start, end))
        except DataError as exc:
            primary_error, result = exc, {}
            log.warning(
                "%s failed (%s): asking %s for %d symbols",
                self.primary.name,
                exc,
                self.fallback.name,
                len(symbols),
            )
        served = dict.fromkeys(result, self.primary.name)
        now = time.monotonic()
        missing = [s for s in symbols if s not in result]
        if primary_error is None:
            missing = [s for s in missing if self._quiet_until.get(s, 0.0) <= now]
        if missing:
            try:
                extra = self.fallback.fetch(missing, timeframe, start, end)
            except DataError as exc:
                if primary_error is not None:
                    raise DataError(
                        f"{self.primary.name} failed ({primary_error}) and {self.fallback.name} failed ({exc})"
                    ) from exc
                log.warning("%s failed for %s: %s", self.fallback.name, ", ".join(missing), exc)
                extra = {}
            for symbol in missing:
                if symbol in extra and len(extra[symbol]):
                    result[symbol] = extra[symbol]
                    served[symbol] = self.fallback.name
                    self._quiet_until.pop(symbol, None)
                else:
                    self._quiet_until[symbol] = now + self.quiet_seconds
            if extra:
                log.info(
                    "bars for %s served by %s (%s)",
                    ", ".join(sorted(s for s in served if served[s] == self.fallback.name)),
                    self.fallback.name,
                    "primary failed" if primary_error else f"missing from {self.primary.name}",
                )
        self.served = served
        return result
