"""Build the Alpaca broker and bar source from settings, and prove the keys work.

The composition root calls ``build_alpaca(settings)`` when ``ALPACA_API_KEY`` is set. Wrong keys
raise ``AuthenticationError`` with a message naming the variables to fix; nothing here ever
falls back to the simulator. A live account on the delayed SIP feed is refused (``check_feed``).
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from alpaca.trading.client import TradingClient

from bot.alpaca.broker import AlpacaBroker
from bot.alpaca.data import AlpacaBarSource
from bot.alpaca.http import DEFAULT_TIMEOUT, AlpacaHttp
from bot.brokers.base import AuthenticationError
from bot.config import ConfigError, Settings
from bot.data.base import BarSource
from bot.data.fallback import FallbackSource
from bot.data.polygon import DEFAULT_BASE_URL, PolygonBarSource
from bot.data.sessions import RegularHours

log = logging.getLogger(__name__)

LIVE_HOST = "api.alpaca.markets"
PAPER_HOST = "paper-api.alpaca.markets"


def url_setting(settings: Settings, name: str) -> str | None:
    """A REST override is the bare origin (no /v2, no trailing slash); empty means none."""
    text = str(getattr(settings, name.lower())).strip().rstrip("/")
    if not text:
        return None
    for suffix in ("/v2", "/v1beta3"):
        if text.endswith(suffix):
            text = text[: -len(suffix)]
    if urlsplit(text).scheme not in ("http", "https"):
        raise ConfigError(f"{name}={text!r} is invalid: expected an http(s) URL such as https://{PAPER_HOST}")
    return text


def trading_mode(settings: Settings) -> bool:
    """True for paper trading. Live needs ALPACA_PAPER=false, and an override URL must agree."""
    paper = settings.alpaca_paper
    url = url_setting(settings, "ALPACA_TRADING_URL")
    host = urlsplit(url).hostname if url else None
    if paper and host == LIVE_HOST:
        raise ConfigError(
            "ALPACA_TRADING_URL points at live trading while ALPACA_PAPER=true: set one or the other"
        )
    if not paper and host == PAPER_HOST:
        raise ConfigError(
            "ALPACA_TRADING_URL points at paper trading while ALPACA_PAPER=false: set one or the other"
        )
    return paper


DELAYED_SIP = "delayed_sip"


def check_feed(settings: Settings, paper: bool) -> str | None:
    """``ALPACA_DATA_FEED=delayed_sip`` serves stock bars 15 minutes late (docs.alpaca.markets,
    "Historical API": SIP data "15 minutes delayed" on the free plan): strategies would trade
    on prices a quarter of an hour old. Refused for live trading (``ConfigError``); for paper, the
    warning to show (None for every other feed)."""
    if settings.alpaca_data_feed.value != DELAYED_SIP:
        return None
    if not paper:
        raise ConfigError(
            "ALPACA_DATA_FEED=delayed_sip is refused for live trading: its stock bars are 15 minutes old, "
            "and orders would trade on them; use iex (free) or sip (paid)"
        )
    return (
        "ALPACA_DATA_FEED=delayed_sip: stock bars are 15 MINUTES OLD; signals and stops come from stale "
        "prices. Paper only (live trading refuses it): use iex (free) or sip (paid) to trade on current prices"
    )


def build_alpaca(settings: Settings, *, timeout: float = DEFAULT_TIMEOUT) -> tuple[AlpacaBroker, BarSource]:
    """The Alpaca broker and bar source (with Polygon behind it when ``POLYGON_API_KEY`` is set).

    Calls ``get_account`` once: wrong keys raise ``AuthenticationError``, an unreachable Alpaca
    raises ``BrokerError``. Both stop start-up; neither ever means "use the simulator".
    """
    key, secret = settings.alpaca_api_key.get_secret_value(), settings.alpaca_api_secret.get_secret_value()
    if not key or not secret:
        raise AuthenticationError("ALPACA_API_KEY and ALPACA_API_SECRET must both be set to trade on Alpaca")
    paper = trading_mode(settings)
    feed_warning = check_feed(settings, paper)
    if feed_warning:
        log.warning("%s", feed_warning)
    http = AlpacaHttp(timeout=timeout)  # one per account: one stall budget, a rate limit per API
    client = http.install(
        TradingClient(key, secret, paper=paper, url_override=url_setting(settings, "ALPACA_TRADING_URL"))
    )
    alpaca_data = AlpacaBarSource.create(
        key,
        secret,
        url=url_setting(settings, "ALPACA_DATA_URL"),
        feed=settings.alpaca_data_feed.value,
        http=http,
    )
    broker = AlpacaBroker(
        client,
        paper=paper,
        http=http,
        prices=alpaca_data,
        crypto_fee_bps=settings.alpaca_crypto_fee_bps,
        emergency_exit=settings.emergency_exit,
    )
    account = broker.check_credentials()
    log.info(
        "Alpaca %s account: equity %.2f, buying power %.2f; %s",
        broker.mode.upper(),
        account.equity,
        account.buying_power,
        broker.flags().describe(),
    )
    source: BarSource = alpaca_data
    polygon_key = settings.polygon_api_key.get_secret_value()
    if polygon_key:
        base = settings.polygon_base_url or DEFAULT_BASE_URL
        source = FallbackSource(alpaca_data, PolygonBarSource(polygon_key, base_url=base, timeout=timeout))
    if not settings.tradebot_extended_hours_bars:
        source = RegularHours(source)  # Alpaca and Polygon serve extended hours with no way to ask otherwise
    return broker, source
