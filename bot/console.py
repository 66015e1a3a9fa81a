"""The console front end: the same slash commands as Telegram, typed on standard input.

Replies and alerts go to standard output; each alert starts with its time. Alerts come from the
transport-neutral event feed (``service.feed``), as the web's WebSocket gets them
(``ConsoleAlerts`` below). End of input (Ctrl-D or a closed pipe) ends the session like any
REPL, so ``printf '/status\\n' | tradebot run`` works in scripts; an input that ends before its
first line is no console at all (``run_console``). Commands wait for the run's start-up.

Standard input is read by a daemon thread of its own, with ``os.read`` on the raw descriptor:
a read blocked on a terminal then never holds the process at exit (a thread of asyncio's
executor would be joined by the interpreter, so Ctrl-C or SIGTERM would wait for a key press),
and it holds no lock of ``sys.stdin``'s buffer that the interpreter could need while exiting.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TextIO

from bot import formatting as fmt
from bot.commands import Caller, CommandRouter, Reply
from bot.domain import Event
from bot.outage import OUTAGE_POLICY, is_database_failure
from bot.service.feed import EventFeed, Subscription

log = logging.getLogger(__name__)

CALLER = Caller(transport="console", chat_id=0, name="console")
READ_CHUNK = 65536


def is_terminal(*streams: TextIO) -> bool:
    """True when every stream is a terminal (a person is reading and typing)."""
    for stream in streams:
        try:
            if not stream.isatty():
                return False
        except (AttributeError, ValueError, OSError):
            return False
    return True


class ConsolePrinter:
    """Thread-safe printing of replies and alerts (alerts come from worker threads).

    When the reader of the output goes away (``tradebot run | head``), printing stops and
    ``on_closed`` is called once: nobody reads the replies any more.
    """

    def __init__(self, out: TextIO, on_closed: Callable[[], object] | None = None) -> None:
        self.out = out
        self.on_closed = on_closed
        self.closed = False
        self._lock = threading.Lock()

    def print(self, text: str) -> None:
        with self._lock:
            if self.closed:
                return
            try:
                self.out.write(text.rstrip("\n") + "\n")
                self.out.flush()
            except (BrokenPipeError, ValueError):  # ValueError: the stream was closed under us
                self.closed = True
                log.warning("console output closed: replies and alerts are no longer shown")
                if self.on_closed is not None:
                    self.on_closed()

    def alert(self, event: Event) -> None:
        self.print(fmt.console_alert(event))

    def reply(self, reply: Reply) -> None:
        text = reply.text
        if reply.photo is not None:
            text += f"\n(a {len(reply.photo):,}-byte PNG chart: Telegram shows it; the console does not)"
        self.print(text)


def _lines_from_fd(fd: int) -> Iterator[str]:
    """Lines (without the newline) from a file descriptor, decoded as UTF-8; the last may lack one."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    while True:
        try:
            chunk = os.read(fd, READ_CHUNK)
        except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for clarity
            continue
        except OSError:  # the terminal went away (EIO on a hung-up pty): end of input
            chunk = b""
        if not chunk:
            pending += decoder.decode(b"", final=True)
            if pending:
                yield pending
            return
        pending += decoder.decode(chunk)
        *lines, pending = pending.split("\n")
        yield from lines


def _lines_from_stream(stream: TextIO) -> Iterator[str]:
    for line in iter(stream.readline, ""):
        yield line.rstrip("\n")


def _source_lines(source: TextIO) -> Iterator[str]:
    try:
        fd = source.fileno()
    except (AttributeError, ValueError, OSError):  # io.StringIO and friends: no descriptor
        return _lines_from_stream(source)
    return _lines_from_fd(fd)


async def read_lines(source: TextIO) -> asyncio.Queue[str | None]:
    """Start the reader thread; the queue yields each line, then None at end of input."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def put(item: str | None) -> bool:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the event loop is closed: the process is exiting
            return False
        return True

    def pump() -> None:
        try:
            for line in _source_lines(source):
                if not put(line):
                    return
        except Exception:
            log.exception("reading the console's input failed")
        put(None)

    threading.Thread(target=pump, name="console-input", daemon=True).start()
    return queue


async def run_console(
    router: CommandRouter,
    printer: ConsolePrinter,
    stdin: TextIO | None = None,
    *,
    ready: asyncio.Event | None = None,
    optional: bool = False,
) -> bool:
    """Read commands until end of input; True when that end should end the run.

    ``ready``: commands wait for it (start-up done: the lease taken and the start-up checks run,
    or standby), so a piped ``/pause`` is not handled before the run has said how it starts.
    ``optional`` (TRADEBOT_CONSOLE=auto, input not a terminal): an input that ends before its
    first line means nobody is there to type (``< /dev/null``, a closed pipe, a platform with no
    terminal): the bot trades on without a console and says so once. (Alerts reach the printer
    through ``ConsoleAlerts``.)
    """
    source = stdin if stdin is not None else sys.stdin
    if source is not None and is_terminal(source):
        printer.print("Type /help for the commands. Ctrl-D quits (Ctrl-C too).")
    queue = await read_lines(source) if source is not None else _ended()
    seen = False
    while True:
        line = await queue.get()
        if line is None:  # end of input
            if optional and not seen:
                printer.print(NO_INPUT)
                log.info("%s", NO_INPUT)
                return False
            return True
        seen = True
        if not line.strip():
            continue
        if ready is not None and not ready.is_set():
            await ready.wait()
        reply = await asyncio.to_thread(router.handle, line, CALLER)
        printer.reply(reply)


NO_INPUT = (
    "No standard input: trading on without a console (commands: Telegram or the dashboard; "
    "Ctrl-C or SIGTERM stops). TRADEBOT_CONSOLE=on makes the end of input stop the run."
)


def _ended() -> asyncio.Queue[str | None]:
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    queue.put_nowait(None)
    return queue


class ConsoleAlerts:
    """The console's alerts, from the transport-neutral event feed (``service.feed``), as the web's
    WebSocket gets them: every recorded event once, in id order, from the moment the console
    starts, those of other processes on the same database (``tradebot tick``) included. Events
    that could not be stored (the database is what failed: ``bot/outage.py``, a deleted SQLite
    file) reach no feed; they come straight from the notifier.

    While the database cannot be read the feed waits on the shared retry policy's backoff and
    resumes where it stopped, so no alert is lost or shown twice. ``finish`` prints what is left
    (the "stopped" alert) before the console closes.
    """

    def __init__(self, feed: EventFeed, printer: ConsolePrinter) -> None:
        self.feed = feed
        self.printer = printer
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Subscribe from now on (call it before the bot records its "started" event)."""
        self._subscription = await self.feed.live()
        self.feed.watch(self._unstored)
        self._task = asyncio.create_task(self._run(self._subscription))

    def _unstored(self, event: Event) -> None:  # the notifier's thread
        if event.id is None:
            self.printer.alert(event)

    async def _run(self, subscription: Subscription) -> None:
        failures = 0
        while True:
            try:
                async for event in subscription:
                    failures = 0
                    self.printer.alert(event)
                return
            except Exception as exc:
                if not is_database_failure(exc):
                    log.exception("the console's alerts stopped")
                    return
                failures += 1
                log.debug("console alerts: the event feed cannot be read (%s); retrying", exc)
                await asyncio.sleep(OUTAGE_POLICY.backoff(failures))

    async def finish(self) -> None:
        """Print the events recorded since the last one shown (the "stopped" alert), then stop."""
        self.feed.unwatch(self._unstored)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        subscription = self._subscription
        if subscription is None:
            return
        subscription.close()
        try:
            rest = await asyncio.to_thread(self.feed.after, subscription.last_id)
        except Exception as exc:  # the database is gone: what it holds cannot be shown
            log.warning("console alerts: the last events cannot be read: %s", exc)
            return
        for event in rest:
            self.printer.alert(event)
