"""Telegram command round trip and /chart time (targets: p99 < 50 ms at 20 commands/s; /chart < 1.5 s).

The real front end (python-telegram-bot over HTTP) against the fake Bot API server on
127.0.0.1, with the engine ticking on its scheduler as in ``tradebot run`` (simulated market,
accelerated clock) and alerts on. Several chats send a mix of read commands at 20 a second;
a command's round trip runs from the moment the server hands the update to the bot's
long poll to the moment the bot's reply reaches the server. Then /chart is sent ten times
from one chat (matplotlib is imported in the background once Telegram is connected).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.app import build_app
from bot.config import Settings
from bot.engine import start_scheduler
from bot.telegram.transport import TelegramConfig, TelegramFrontEnd
from tests.fakes.telegram_api import FakeTelegram

TOKEN = "123456789:AAbenchmarkTokenNotReal_0123456789abcdef"
CHATS = [101, 102, 103, 104, 105]
RATE = 20.0  # commands per second, all chats together
SECONDS = 15
CHARTS = 10
REPLIES = {
    "/status": ("Mode:",),
    "/positions": ("Open positions:", "No open positions."),
    "/orders": ("Open orders:", "No open orders."),
    "/pnl": ("Today:",),
    "/trades 5": ("Last ", "No closed trades"),
    "/risk": ("Risk limits",),
    "/strategies": ("Running:",),
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def feed(server: FakeTelegram, sent: dict[int, list[tuple[int, str]]], done: threading.Event) -> None:
    commands = list(REPLIES)
    start = time.monotonic()
    for i in range(int(RATE * SECONDS)):
        time.sleep(max(0.0, start + i / RATE - time.monotonic()))
        chat = CHATS[i % len(CHATS)]
        text = commands[(i // len(CHATS)) % len(commands)]
        update_id = server._next_update  # the id command() is about to use
        server.command(chat, text)
        sent[chat].append((update_id, text))
    done.set()


def instrument(front: TelegramFrontEnd) -> tuple[dict[int, list[float]], dict[int, list[float]]]:
    """Per chat: when the poller queued each update, and when each reply was accepted.

    A chat's updates are handled in order and each command gets one reply, so the n-th reply
    of a chat answers its n-th command.
    """
    received: dict[int, list[float]] = {chat: [] for chat in CHATS}
    replied: dict[int, list[float]] = {chat: [] for chat in CHATS}
    queue = front.application.update_queue
    put, send_reply = queue.put, front.handlers.send_reply

    async def timed_put(update):  # type: ignore[no-untyped-def]
        effective = getattr(update, "effective_chat", None)  # the updater's stop sentinel has none
        chat = effective.id if effective else None
        if chat in received:
            received[chat].append(time.monotonic())
        await put(update)

    async def timed_reply(bot, chat_id, reply):  # type: ignore[no-untyped-def]
        await send_reply(bot, chat_id, reply)
        if chat_id in replied:
            replied[chat_id].append(time.monotonic())

    queue.put = timed_put  # type: ignore[method-assign]
    front.handlers.send_reply = timed_reply  # type: ignore[method-assign]
    return received, replied


def round_trips(server: FakeTelegram, sent: dict[int, list[tuple[int, str]]]) -> list[float]:
    out = []
    for chat, commands in sent.items():
        replies = [
            c
            for c in server.calls_of("sendMessage", chat_id=chat)
            if c.text.startswith(sum(REPLIES.values(), ()))
        ]
        for (update_id, text), reply in zip(commands, replies, strict=False):
            assert reply.text.startswith(REPLIES[text]), (text, reply.text[:40])
            out.append(reply.at - server.served_at[update_id])
    return out


async def run(server: FakeTelegram, tmp: str) -> None:
    settings = Settings.from_mapping(
        {
            "DATABASE_URL": f"sqlite:///{Path(tmp) / 'bench.db'}",
            "TRADEBOT_SYMBOLS": "AAPL,MSFT,SPY,BTC/USD,ETH/USD",
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_BASE_URL": server.base_url,
            "TELEGRAM_ALLOWED_CHAT_IDS": ",".join(map(str, CHATS)),
            "LOG_LEVEL": "WARNING",
        }
    )
    app = build_app(settings, accelerate=True)
    assert app.lease.try_acquire(), "another process holds the trading lease"  # trade as `tradebot run`
    scheduler = start_scheduler(app.engine.run_tick, app.interval_seconds)
    front = TelegramFrontEnd(app, TelegramConfig.from_settings(settings))
    stop = asyncio.Event()
    task = asyncio.create_task(front.run(stop))
    await asyncio.wait_for(front.connected.wait(), 30)
    await asyncio.sleep(2)  # a few cycles of history
    received, replied = instrument(front)

    sent: dict[int, list[tuple[int, str]]] = {chat: [] for chat in CHATS}
    done = threading.Event()
    threading.Thread(target=feed, args=(server, sent, done), daemon=True).start()
    while not done.is_set():
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)
    count = sum(len(v) for v in sent.values())
    inside = [
        (t1 - t0) * 1000 for chat in CHATS for t0, t1 in zip(received[chat], replied[chat], strict=False)
    ]
    outside = [t * 1000 for t in round_trips(server, sent)]
    print(
        f"command round trip, {RATE:g} commands/s from {len(CHATS)} chats for {SECONDS} s "
        f"({len(inside)}/{count} answered; engine ticking, alerts on; the fake server shares the process):"
    )
    for label, ms in (
        ("in the bot (update fetched -> reply accepted)", inside),
        ("at the server (update handed out -> reply arrived)", outside),
    ):
        print(
            f"  {label}: median {statistics.median(ms):.1f} ms, p95 {percentile(ms, 95):.1f} ms, "
            f"p99 {percentile(ms, 99):.1f} ms, max {max(ms):.1f} ms (target p99 < 50 ms)"
        )

    chart_times = []
    for _ in range(CHARTS):
        mark = server.mark()
        update_id = server._next_update
        server.command(CHATS[0], "/chart BTC/USD")
        photo = await asyncio.to_thread(server.wait_reply, CHATS[0], "BTC/USD", 20, mark, ("sendPhoto",))
        chart_times.append(photo.at - server.served_at[update_id])
    print(
        f"/chart BTC/USD (update to photo received, {len(photo.files['photo']):,}-byte PNG): "
        f"first {chart_times[0] * 1000:.0f} ms, "
        f"then median {statistics.median(chart_times[1:]) * 1000:.0f} ms, "
        f"max {max(chart_times[1:]) * 1000:.0f} ms (target < 1500 ms)"
    )
    stop.set()
    await task
    scheduler.shutdown(wait=False)
    await app.engine.wait_idle()
    app.db.dispose()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, FakeTelegram(TOKEN) as server:
        asyncio.run(run(server, tmp))


if __name__ == "__main__":
    main()
