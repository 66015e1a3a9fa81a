"""``tradebot run``: the engine on a schedule plus the front ends, on one asyncio event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TextIO

from bot.app import App
from bot.console import ConsolePrinter, run_console
from bot.domain import EventKind
from bot.engine import start_scheduler

log = logging.getLogger(__name__)

RECONCILE_MINUTES = 15
SHUTDOWN_GRACE_SECONDS = 15

# A transport runs until ``stop`` is set (Telegram plugs in here).
Transport = Callable[[App, asyncio.Event], Awaitable[None]]


def wants_console(app: App) -> bool:
    choice = str(app.settings.tradebot_console).lower()
    if choice in {"on", "true", "1", "yes"}:
        return True
    if choice in {"off", "false", "0", "no"}:
        return False
    return not app.settings.values.get("TELEGRAM_BOT_TOKEN")


def transports_for(app: App) -> list[Transport]:
    if not app.settings.values.get("TELEGRAM_BOT_TOKEN"):
        return []
    from bot.telegram.transport import run_telegram

    return [run_telegram]


async def serve(
    app: App, *, console: bool, stdin: TextIO | None = None, stdout: TextIO | None = None
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    printer = ConsolePrinter(stdout or sys.stdout)
    for line in app.banner:
        printer.print(line)
        log.info("%s", line)
    for warning in app.warnings:
        printer.print(f"warning: {warning}")
    if console:
        app.notifier.subscribe(printer.alert)
    await asyncio.to_thread(_startup, app)

    scheduler = start_scheduler(
        app.engine,
        app.interval_seconds,
        extra_jobs=[(_reconcile_job(app), {"trigger": "interval", "minutes": RECONCILE_MINUTES})],
    )
    tasks = [asyncio.create_task(transport(app, stop)) for transport in transports_for(app)]
    if console:
        console_task = asyncio.create_task(run_console(app.router, printer, stdin))
        console_task.add_done_callback(lambda task: _transport_ended(task, stop))
        tasks.append(console_task)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        scheduler.pause()  # no new cycles; the one running finishes before anything closes
        await _wait_for_cycle(app)
        scheduler.shutdown(wait=False)
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(app.service.emit, EventKind.STOPPED, "tradebot stopped.")
        app.db.dispose()


def _transport_ended(task: asyncio.Task[None], stop: asyncio.Event) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("console front end failed", exc_info=task.exception())
    stop.set()


def _startup(app: App) -> None:
    app.service.emit(
        EventKind.STARTED, f"tradebot started: {app.banner[1] if len(app.banner) > 1 else app.mode}"
    )
    if app.service.paused:
        app.service.emit(
            EventKind.PAUSED, "Trading is still paused (since before the restart): /resume to allow entries."
        )
    try:
        app.service.reconcile()
    except Exception as exc:
        log.exception("start-up reconciliation failed")
        app.service.emit(EventKind.BROKER_ERROR, f"Start-up reconciliation failed: {exc}")


def _reconcile_job(app: App) -> Callable[[], Awaitable[None]]:
    async def reconcile() -> None:
        try:
            await asyncio.to_thread(app.service.reconcile)
        except Exception:
            log.exception("scheduled reconciliation failed")

    return reconcile


async def _wait_for_cycle(app: App) -> None:
    """Let a cycle in progress finish (it is never cut mid-order), within a bound."""
    try:
        async with asyncio.timeout(SHUTDOWN_GRACE_SECONDS):
            await app.engine.wait_idle()
    except TimeoutError:
        log.warning("a cycle was still running after %ss; exiting anyway", SHUTDOWN_GRACE_SECONDS)
