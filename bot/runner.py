"""``tradebot run``: the engine on a schedule plus the front ends, on one asyncio event loop.

Only the holder of the trading lease (``bot/lease.py``) trades: a second process waits in
standby, saying so in its log and in the console's /status, and takes over when the first
stops renewing. Telegram starts once the lease is held (one poller per bot token).

On SIGTERM or SIGINT: no new orders (the lease drains), the running cycle finishes within
``SHUTDOWN_GRACE_SECONDS``, the lease is released so a successor starts at once, and the
process exits; a cycle that is still stuck after the grace period is abandoned and the
process exits anyway, keeping the lease until it runs out. The exit status is 0, or 130 after
Ctrl-C (SIGINT), as shells expect of an interrupted program.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, TextIO

from bot.app import App
from bot.config.types import ConsoleMode
from bot.console import ConsoleAlerts, ConsolePrinter, is_terminal, run_console
from bot.domain import Event, EventKind, Severity
from bot.engine import start_scheduler
from bot.outage import is_database_failure
from bot.summary import summary_job
from storage.db import DatabaseError

log = logging.getLogger(__name__)

RECONCILE_MINUTES = 15
SHUTDOWN_GRACE_SECONDS = 15
TRANSPORT_GRACE_SECONDS = 3
EXIT_LEASE_LOST = 3  # another instance took over: exit so a supervisor restarts us in standby
EXIT_DATABASE_LOST = 4  # the SQLite file was deleted or replaced under us: stop, nothing is safe
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130: stopped by Ctrl-C

# A transport runs until ``stop`` is set (Telegram plugs in here).
Transport = Callable[[App, asyncio.Event], Coroutine[Any, Any, None]]


def wants_console(app: App) -> bool:
    return app.settings.wants_console()


def transports_for(app: App) -> list[Transport]:
    transports: list[Transport] = []
    if app.settings.telegram_enabled:
        from bot.telegram.transport import run_telegram

        transports.append(run_telegram)
    if app.broker.name == "alpaca" and app.settings.alpaca_streaming:
        from bot.alpaca.streams import run_streams

        transports.append(run_streams)
    return transports


async def serve(app: App, *, console: bool, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """Run until SIGTERM, SIGINT or the end of the console's input; returns the exit status."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_closed() -> None:
        loop.call_soon_threadsafe(stop.set)

    printer = ConsolePrinter(stdout or sys.stdout, on_closed=on_closed)
    received: list[int] = []

    def on_signal(sig: int) -> None:
        if received:
            printer.print("Still stopping: waiting for the cycle in progress to finish.")
        else:
            printer.print("Stopping: no new orders; finishing the cycle in progress.")
        received.append(sig)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal, sig)

    for line in app.banner:
        printer.print(line)
        log.info("%s", line)
    for warning in app.warnings:
        printer.print(f"warning: {warning}")
    # The web server binds before the lease: /healthz and the read-only dashboard on standby too.
    from bot.web.server import start_web  # WebStartError reaches the CLI as a one-line refusal

    app.web = await start_web(app, printer.print)
    tasks: list[asyncio.Task[bool]] = []
    alerts: ConsoleAlerts | None = None
    ready = asyncio.Event()  # start-up done (or standby): commands typed meanwhile wait for it
    if console:  # the console answers /status in standby too
        alerts = ConsoleAlerts(app.service.feed, printer)
        await alerts.start()  # before "started" is recorded, so it is shown
        source = stdin if stdin is not None else sys.stdin
        optional = app.settings.tradebot_console is ConsoleMode.AUTO and not is_terminal(source)
        console_task = asyncio.create_task(
            run_console(app.router, printer, source, ready=ready, optional=optional)
        )
        console_task.add_done_callback(lambda task: _transport_ended(task, stop))
        tasks.append(console_task)
    scheduler = None
    transports: list[asyncio.Task[None]] = []
    status = 0
    try:
        if not await _acquire_lease(app, stop, printer, on_standby=ready.set):
            return _exit_status(received, 0)
        await asyncio.to_thread(_startup, app)
        ready.set()
        app.engine.overruns.interval = app.interval_seconds
        scheduler = start_scheduler(
            _tick_job(app, stop),  # no cycle unless this process holds the lease
            app.interval_seconds,
            extra_jobs=[
                (_reconcile_job(app), {"trigger": "interval", "minutes": RECONCILE_MINUTES}),
                *_summary_jobs(app),
            ],
        )
        transports = [asyncio.create_task(transport(app, stop)) for transport in transports_for(app)]
        keeper = asyncio.create_task(_keep_lease(app, stop))
        await stop.wait()
        keeper.cancel()
        status = EXIT_DATABASE_LOST if app.database_lost else EXIT_LEASE_LOST if app.lease.lost else 0
    finally:
        log.info("shutting down")
        app.lease.draining = True  # from here on no order leaves this process
        finished = True
        if scheduler is not None:
            scheduler.pause()  # no new cycles; the one running finishes before anything closes
            finished = await _wait_for_cycle(app)
            scheduler.shutdown(wait=False)
        if scheduler is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(app.service.emit, EventKind.STOPPED, "tradebot stopped.")
        if alerts is not None:
            await alerts.finish()  # the "stopped" alert, and whatever else is not shown yet
        # Transports saw `stop` too: give them a moment to finish cleanly (Telegram acknowledges
        # its last updates), then cut what is left. The console waits on stdin: cut it at once.
        if transports:
            await asyncio.wait(transports, timeout=TRANSPORT_GRACE_SECONDS)
        for task in tasks + transports:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, *transports, return_exceptions=True)
        if app.web is not None:
            await app.web.stop()
        if scheduler is not None and app.mode == "sim":
            await asyncio.to_thread(_leave_clock, app)
        if finished:
            try:
                await asyncio.to_thread(app.lease.release)
            except Exception as exc:
                log.warning("could not release the trading lease (it expires by itself): %s", exc)
        app.db.dispose()
        if not finished:
            # The cycle's thread cannot be interrupted, and the interpreter would wait for it at exit.
            logging.shutdown()
            os._exit(1)
    return _exit_status(received, status)


def _leave_clock(app: App) -> None:
    """The simulated clock's state for the next process (`tradebot tick`, the next run), which
    resumes from it plus the real time since (``bot/simaccount.py``)."""
    from bot.simaccount import save_clock

    try:
        save_clock(app.db, app.clock.now(), datetime.now(UTC))
    except Exception as exc:  # the last cycle's state stays: the next process resumes from that
        log.warning("could not record where the simulated clock stopped: %s", exc)


def _exit_status(received: list[int], status: int) -> int:
    """130 after Ctrl-C (unless something worse happened), otherwise ``status``."""
    if status == 0 and received and received[0] == signal.SIGINT:
        return EXIT_INTERRUPTED
    return status


async def _acquire_lease(
    app: App, stop: asyncio.Event, printer: ConsolePrinter, on_standby: Callable[[], object] = lambda: None
) -> bool:
    """Wait in standby until this process holds the trading lease; False if told to stop first.
    ``on_standby`` is called when another instance holds it (the console answers from then on)."""
    lease = app.lease
    poll = min(5.0, lease.seconds / 6)
    waited_for: str | None = None
    while not stop.is_set():
        try:
            before = await asyncio.to_thread(lease.info)
            if await asyncio.to_thread(lease.try_acquire):
                if waited_for:
                    log.warning("took over the trading lease from %s", waited_for)
                elif before is not None and before.holder != lease.holder and not before.released:
                    # Its holder died without releasing it (kill -9, a lost dyno): say so after a crash.
                    log.warning(
                        "took over the trading lease from %s, which stopped without releasing it",
                        before.holder,
                    )
                log.info("trading lease held by this instance (%s)", lease.holder)
                return True
            other = lease.other
            if other is not None and other.holder != waited_for:
                waited_for = other.holder
                message = (
                    f"standby: the trading lease is {other.describe()}; "
                    "this instance takes over when it stops"
                )
                log.warning("%s", message)
                printer.print(message)
                on_standby()
        except DatabaseError as exc:
            log.warning("cannot reach the database to take the trading lease: %s", exc)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(poll):
                await stop.wait()
    return False


async def _keep_lease(app: App, stop: asyncio.Event) -> None:
    """Renew the lease every third of its length; stop the process if another instance took it.

    A renewal the database cannot answer is an outage (``bot/outage.py``): said once, not at every
    heartbeat; trading pauses by itself once the lease can no longer be trusted (``Lease.held``)
    and resumes with the first renewal that goes through, if nobody else took over meanwhile."""
    lease = app.lease
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(lease.heartbeat_seconds):
                await stop.wait()
        if stop.is_set():
            break
        try:
            renewed = await asyncio.to_thread(lease.renew)
        except Exception as exc:
            if not is_database_failure(exc):
                log.warning("cannot renew the trading lease: %s", exc)
            app.engine.outage.failed(exc, "renewing the trading lease", backoff=False)
            continue
        if renewed:
            await app.engine.database_answered()
        if not renewed:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(
                    app.service.emit,
                    EventKind.LEASE_LOST,
                    "Another instance took over the trading lease: this one stopped trading and exits.",
                    severity=Severity.ERROR,
                )
            stop.set()
            return


def _tick_job(app: App, stop: asyncio.Event) -> Callable[[], Awaitable[object]]:
    skipped: list[str] = []  # the reason last logged, so a standby is said once, not every cycle

    async def tick() -> object:
        if app.lease.draining or not app.lease.held:
            reason = app.lease.describe()
            if skipped != [reason]:
                log.warning("cycles skipped: %s", reason)
                skipped[:] = [reason]
            return None
        if skipped:
            log.info("cycles run again: %s", app.lease.describe())
            skipped.clear()
        try:
            app.db.check_file()  # a deleted SQLite file would swallow every record from here on
        except DatabaseError as exc:
            _database_lost(app, stop, str(exc))
            return None
        report = await app.engine.run_tick()
        if app.web is not None:
            app.web.cycle_finished(report)  # live pages refresh prices and equity
        return report

    return tick


def _database_lost(app: App, stop: asyncio.Event, reason: str) -> None:
    """Stop trading at once and say why; the alert cannot go through the (lost) events table, so it
    goes to the log and straight to the live listeners (the console)."""
    app.lease.draining = True
    app.database_lost = True
    message = f"Trading stopped: {reason}."
    log.error("%s", message)
    app.notifier.publish(Event(EventKind.BROKER_ERROR, message, datetime.now(UTC), Severity.ERROR))
    stop.set()


def _transport_ended(task: asyncio.Task[bool], stop: asyncio.Event) -> None:
    if task.cancelled():
        return
    if task.exception() is not None:
        log.error("console front end failed", exc_info=task.exception())
    elif task.result() is False:  # no standard input at all: trade on without a console
        return
    stop.set()


def _startup(app: App) -> None:
    app.service.emit(
        EventKind.STARTED, f"tradebot started: {app.banner[1] if len(app.banner) > 1 else app.mode}"
    )
    pause = app.service.pause_state()
    if pause is not None:
        from bot import formatting as fmt

        state = fmt.paused(pause, simulated=app.mode == "sim")
        app.service.emit(EventKind.PAUSED, f"Trading is still {state}. /resume allows entries.")
    try:
        app.service.reconcile()
    except Exception as exc:
        log.exception("start-up reconciliation failed")
        app.service.emit(
            EventKind.RECONCILIATION_FAILED, f"Start-up reconciliation failed: {exc}", severity=Severity.ERROR
        )


def _reconcile_job(app: App) -> Callable[[], Awaitable[None]]:
    async def reconcile() -> None:
        if app.engine.outage.waiting():
            return  # the next scheduled one catches up
        try:
            await asyncio.to_thread(app.service.reconcile)
        except Exception as exc:
            if is_database_failure(exc):
                app.engine.outage.failed(exc, "the scheduled reconciliation")
            else:
                log.exception("scheduled reconciliation failed")

    return reconcile


def _summary_jobs(app: App) -> list[tuple[Callable[[], Awaitable[None]], dict[str, Any]]]:
    """The daily summary as a cron job on the same scheduler (DAILY_SUMMARY_TIME; off: none)."""
    when = app.settings.daily_summary_time  # parsed and checked with the other settings
    return [] if when is None else [(summary_job(app.service, when), {"trigger": when.trigger()})]


async def _wait_for_cycle(app: App) -> bool:
    """Let a cycle in progress finish (it is never cut mid-order), within a bound. False: it did not."""
    try:
        async with asyncio.timeout(SHUTDOWN_GRACE_SECONDS):
            await app.engine.wait_idle()
    except TimeoutError:
        log.warning("a cycle was still running after %ss; exiting anyway", SHUTDOWN_GRACE_SECONDS)
        return False
    return True
