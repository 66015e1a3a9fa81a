"""ALPACA_DATA_FEED=delayed_sip: stock bars 15 minutes old. Refused for live trading, warned loudly
for paper; the real app against the fake Alpaca (tests/fakes/alpaca)."""

from __future__ import annotations

import pytest

from bot.app import build_app
from bot.clock import ManualClock
from bot.config import ConfigError, Settings
from bot.doctor import WARN, check_broker
from tests.fakes.alpaca import FakeAlpaca
from tests.test_alpaca_e2e import NOW, env_for


@pytest.fixture
def fake():
    with FakeAlpaca() as server:
        server.clock.set(NOW)
        yield server


def build(fake: FakeAlpaca, tmp_path, **extra: str):
    settings = Settings.from_mapping(env_for(fake, tmp_path / "t.db", **extra))
    return build_app(settings, accelerate=False, clock=ManualClock(NOW))


def test_delayed_sip_is_refused_for_live_trading(fake, tmp_path):
    with pytest.raises(ConfigError, match="delayed_sip is refused for live trading"):
        build(fake, tmp_path, ALPACA_PAPER="false", ALPACA_DATA_FEED="delayed_sip")
    assert fake.requests_to("POST", "/v2/orders") == []


def test_delayed_sip_on_paper_is_warned_loudly(fake, tmp_path):
    app = build(fake, tmp_path, ALPACA_DATA_FEED="delayed_sip")
    assert app.mode == "paper"
    (line,) = [line for line in app.banner if "ALPACA_DATA_FEED=delayed_sip" in line]
    assert line.startswith("WARNING:") and "15 MINUTES OLD" in line
    settings = Settings.from_mapping(env_for(fake, tmp_path / "t.db", ALPACA_DATA_FEED="delayed_sip"))
    checks = check_broker(settings)  # tradebot doctor says it too (then the account and the stops)
    assert [c.level for c in checks][:2] == ["ok", WARN] and "delayed_sip" in checks[1].message


@pytest.mark.parametrize("feed", ["iex", "sip"])
def test_current_feeds_say_nothing(fake, tmp_path, feed):
    app = build(fake, tmp_path, ALPACA_DATA_FEED=feed, ALPACA_PAPER="false")
    assert not [line for line in app.banner if "WARNING" in line]


def test_hour_bars_say_what_regular_hours_drop(fake, tmp_path):
    app = build(fake, tmp_path, TRADEBOT_TIMEFRAME="1h")
    assert any("straddling 09:30 or 16:00" in line for line in app.banner)
    app = build(fake, tmp_path, TRADEBOT_TIMEFRAME="1h", TRADEBOT_EXTENDED_HOURS_BARS="on")
    assert not any("straddling" in line for line in app.banner)
