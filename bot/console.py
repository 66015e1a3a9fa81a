"""The console front end: the same slash commands as Telegram, typed on standard input.

Replies and alerts go to standard output. End of input (Ctrl-D or a closed pipe) ends the
session like any REPL, so ``printf '/status\\n' | tradebot run`` works in scripts.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import TextIO

from bot import formatting as fmt
from bot.commands import Caller, CommandRouter, Reply
from bot.domain import Event

CALLER = Caller(transport="console", chat_id=0, name="console")


class ConsolePrinter:
    """Thread-safe printing of replies and alerts (alerts come from worker threads)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._lock = threading.Lock()

    def print(self, text: str) -> None:
        with self._lock:
            self.out.write(text.rstrip("\n") + "\n")
            self.out.flush()

    def alert(self, event: Event) -> None:
        self.print("ALERT " + fmt.alert(event))

    def reply(self, reply: Reply) -> None:
        text = reply.text
        if reply.photo is not None:
            text += f"\n(a {len(reply.photo):,}-byte PNG chart: Telegram shows it; the console does not)"
        self.print(text)


async def run_console(router: CommandRouter, printer: ConsolePrinter, stdin: TextIO | None = None) -> None:
    """Read commands until end of input. (Alerts reach the printer through the notifier.)"""
    source = stdin or sys.stdin
    printer.print("Type /help for the commands. Ctrl-D quits.")
    while True:
        line = await asyncio.to_thread(source.readline)
        if line == "":  # end of input
            return
        if not line.strip():
            continue
        reply = await asyncio.to_thread(router.handle, line, CALLER)
        printer.reply(reply)
