"""The Telegram layer's pure parts: the allow-list, refusal rate limits, pacing, batching, times."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from telegram.error import BadRequest

from bot.domain import Event, EventKind, Severity
from bot.service.alerts import GROUPS
from bot.telegram.alerts import batches
from bot.telegram.auth import AllowList, Attempt, RefusalLog
from bot.telegram.handlers import BUTTON_DATA, PerChatUpdateProcessor, confirm_keyboard
from bot.telegram.sending import CONNECT, FLOOD_CONTROL, RateLimiter, split_text, with_retry
from bot.telegram.transport import TelegramConfig

# ---------------------------------------------------------------------- the allow-list


def test_empty_allow_lists_allow_no_one():
    allow_list = AllowList([], [])
    assert not allow_list.check(1, "private", 1).allowed
    assert not allow_list.check(-5, "supergroup", 1).allowed


def test_private_chats_need_the_chat_allow_list():
    allow_list = AllowList([10], [])
    assert allow_list.check(10, "private", 10).allowed
    assert allow_list.check(11, "private", 11).reason == "chat not in TELEGRAM_ALLOWED_CHAT_IDS"


def test_group_chats_need_the_user_allow_list_too():
    allow_list = AllowList([-100], [7])
    assert allow_list.check(-100, "supergroup", 7).allowed
    assert allow_list.check(-100, "group", 8).reason == "group member not in TELEGRAM_ALLOWED_USER_IDS"
    assert not allow_list.check(-100, "channel", None).allowed
    assert not AllowList([-100], []).check(-100, "group", 7).allowed
    assert not allow_list.check(-200, "group", 7).allowed  # an allowed user in another group


def test_refusals_are_recorded_once_per_sender_and_capped_per_hour():
    now = [0.0]
    log = RefusalLog(per_sender_seconds=600, per_hour=3, monotonic=lambda: now[0])

    def attempt(user):
        return Attempt(user, "private", user, "", "/pause")

    assert log.should_record(attempt(1))
    assert not log.should_record(attempt(1))  # the same sender within 10 minutes
    assert log.should_record(attempt(2)) and log.should_record(attempt(3))
    assert not log.should_record(attempt(4))  # three an hour at most
    assert log.take_suppressed() == 2
    now[0] = 3601
    assert log.should_record(attempt(1)) and log.should_record(attempt(4))


# ---------------------------------------------------------------------- buttons


def test_button_data_is_short_and_parsed_strictly():
    keyboard = confirm_keyboard("deadbeef")
    data = [b.callback_data for b in keyboard.inline_keyboard[0]]
    assert data == ["c:deadbeef", "x:deadbeef"]
    assert all(1 <= len(d.encode()) <= 64 for d in data)
    assert BUTTON_DATA.match("c:deadbeef").groups() == ("c", "deadbeef")
    assert BUTTON_DATA.match("c:DEADBEEF; drop") is None


# ---------------------------------------------------------------------- pacing


def test_rate_limiter_paces_each_chat_and_the_total():
    now = [0.0]
    limiter = RateLimiter(per_second=3, private_interval=1.0, group_interval=3.0, monotonic=lambda: now[0])
    assert limiter.delay(1) == 0
    limiter.take(1)
    assert limiter.delay(1) == pytest.approx(1.0)  # one a second into a private chat
    limiter.take(-5)
    assert limiter.delay(-5) == pytest.approx(3.0)  # twenty a minute into a group
    limiter.take(None)
    assert limiter.delay(2) == pytest.approx(1.0)  # three a second in all
    now[0] = 1.0
    assert limiter.delay(1) == 0 and limiter.delay(2) == 0


def test_rate_limiter_acquire_waits():
    limiter = RateLimiter(per_second=30, private_interval=0.2)

    async def two() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await limiter.acquire(9)
        await limiter.acquire(9)
        return loop.time() - start

    assert asyncio.run(two()) >= 0.18


def test_a_429_waits_as_told_then_sends_again_by_the_one_retry_policy():
    from telegram.error import RetryAfter

    slept: list[float] = []
    calls: list[int] = []

    async def asleep(seconds: float) -> None:
        slept.append(seconds)

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RetryAfter(7)
        return "sent"

    assert asyncio.run(with_retry(flaky, "test", asleep=asleep)) == "sent"
    assert slept == [pytest.approx(7.1), pytest.approx(7.1)]  # Telegram's wait, plus 0.1 s

    async def always_429() -> str:
        raise RetryAfter(1)

    slept.clear()
    with pytest.raises(RetryAfter):  # the caller learns it failed
        asyncio.run(with_retry(always_429, "test", asleep=asleep))
    assert len(slept) == FLOOD_CONTROL.attempts - 1

    async def refused() -> str:
        raise BadRequest("Chat not found")

    slept.clear()
    with pytest.raises(BadRequest):  # not a 429: no retry
        asyncio.run(with_retry(refused, "test", asleep=asleep))
    assert slept == []

    slept.clear()
    with pytest.raises(RetryAfter):  # a wait beyond the budget is not waited
        asyncio.run(with_retry(lambda: _raise(RetryAfter(600)), "test", asleep=asleep))
    assert slept == []


async def _raise(exc: Exception) -> str:
    raise exc


def test_connecting_backs_off_from_one_second_to_a_minute():
    waits = [CONNECT.backoff(n) for n in range(1, 10)]
    assert 1.0 <= waits[0] <= 1.1 and 2.0 <= waits[1] <= 2.2
    assert all(60.0 <= w <= 66.0 for w in waits[6:])


def test_long_texts_are_split_at_line_ends():
    text = "\n".join(f"line {i:04d}" for i in range(1000))  # 9,999 characters
    pieces = split_text(text, 4096)
    assert all(len(p) <= 4096 for p in pieces) and len(pieces) == 3
    assert "\n".join(pieces) == text
    assert split_text("x" * 5000, 4096) == ["x" * 4096, "x" * 904]


# ---------------------------------------------------------------------- batching


def _event(i, kind=EventKind.ORDER_FILLED, message=None):
    return Event(kind, message or f"event {i}", datetime(2026, 1, 1, tzinfo=UTC), Severity.INFO, id=i)


def test_a_burst_becomes_few_messages_each_covering_its_events():
    events = [_event(i, message=f"event {i} " + "x" * 90) for i in range(1, 101)]
    out = batches(events, lambda kind: True)
    assert len(out) == 3
    assert all(len(text) <= 4096 for text, _ in out)
    assert out[-1][1] == 100 and [last for _, last in out] == sorted(last for _, last in out)
    assert sum(text.count("event ") for text, _ in out) == 100


def test_switched_off_kinds_are_skipped():
    events = [_event(1), _event(2, EventKind.DATA_OUTAGE), _event(3)]
    out = batches(events, lambda kind: kind is not EventKind.DATA_OUTAGE)
    assert out == [("event 1\nevent 3", 3)]
    assert batches([_event(4, EventKind.DATA_OUTAGE)], lambda kind: False) == []


def test_every_alert_kind_of_the_issue_has_a_group():
    grouped = {kind for _, kinds in GROUPS.values() for kind in kinds}
    for kind in (
        EventKind.ORDER_PLACED,
        EventKind.ORDER_FILLED,
        EventKind.ORDER_REJECTED,
        EventKind.RISK_BLOCKED,
        EventKind.STOP_HIT,
        EventKind.TARGET_HIT,
        EventKind.STRATEGY_ERROR,
        EventKind.DATA_OUTAGE,
        EventKind.DATA_RECOVERED,
        EventKind.PAUSED,
        EventKind.RESUMED,
        EventKind.DAILY_SUMMARY,
        EventKind.UNAUTHORIZED,
    ):
        assert kind in grouped


# ---------------------------------------------------------------------- configuration


def test_config_from_settings_hides_the_token():
    from bot.config import Settings

    settings = Settings.from_mapping(
        {
            "TELEGRAM_BOT_TOKEN": "123456789:AAsecretsecretsecretsecretsecretsecret",
            "TELEGRAM_ALLOWED_CHAT_IDS": "1, -100",
            "TELEGRAM_BASE_URL": "http://127.0.0.1:8081/bot",
        }
    )
    config = TelegramConfig.from_settings(settings)
    assert config.chat_ids == (1, -100) and config.user_ids == ()
    assert config.file_base_url == "http://127.0.0.1:8081/file/bot"
    assert "secret" not in repr(config)
    assert TelegramConfig.from_settings(Settings.from_mapping({})).base_url == "https://api.telegram.org/bot"


def test_updates_of_one_chat_keep_their_order_while_chats_overlap():
    from telegram import Chat, Message, Update

    processor = PerChatUpdateProcessor(8)
    order: list[str] = []

    def update(uid, chat_id):
        chat = Chat(chat_id, "private")
        return Update(uid, message=Message(uid, datetime.now(UTC), chat, text="/x"))

    async def work(name, delay):
        await asyncio.sleep(delay)
        order.append(name)

    async def main():
        await asyncio.gather(
            processor.process_update(update(1, 1), work("a1", 0.05)),
            processor.process_update(update(2, 1), work("a2", 0.0)),
            processor.process_update(update(3, 2), work("b1", 0.0)),
        )

    asyncio.run(main())
    assert order.index("a1") < order.index("a2")  # same chat: in order
    assert order.index("b1") < order.index("a1")  # another chat did not wait
