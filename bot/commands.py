"""Transport-neutral chat commands: parse, call the service, format. Nothing else.

The console and Telegram both hand text to ``CommandRouter.handle`` and send back the
``Reply`` objects it returns. Handlers are synchronous (the service is); transports call
them through ``asyncio.to_thread``.

Dangerous commands (/buy, /sell, /flatten, /cancel ORDER_ID, /risk set) do not act at once: they return a
``Confirmation`` the transport shows as a button (Telegram) or as ``/confirm ID`` (console),
valid for ``confirm_ttl`` seconds, for the same chat only.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot import formatting as fmt
from bot.clock import AcceleratedClock, Clock, SystemClock
from bot.domain import OutcomeStatus, Side
from bot.plugins import Registry
from bot.service import TradingService
from storage.db import DatabaseError

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a command, from where, and when they sent it."""

    transport: str  # console, telegram
    chat_id: int | None = None
    user_id: int | None = None
    name: str = ""
    sent_at: datetime | None = None  # for a forwarded message, when the original was sent
    message_id: int | None = None
    forwarded: bool = False  # a forwarded message is never run as a command

    @property
    def label(self) -> str:
        return self.name or (f"user {self.user_id}" if self.user_id else self.transport)


@dataclass(frozen=True, slots=True)
class Confirmation:
    token: str
    prompt: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    photo: bytes | None = None  # PNG
    confirmation: Confirmation | None = None


class UsageError(ValueError):
    """Malformed arguments; the message is the usage line."""


Handler = Callable[[list[str], Caller], Reply]


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    summary: str
    usage: str
    handler: Handler
    changes_state: bool = False


@dataclass(slots=True)
class _Pending:
    action: Callable[[], Reply]
    caller: Caller
    expires_at: datetime
    summary: str


@dataclass
class CommandRouter:
    service: TradingService
    registry: Registry
    clock: Clock
    confirm_ttl: float = 60.0
    # Message ages and confirmation deadlines are human time. By default that is ``clock``, except
    # for the simulated market's accelerated clock (TRADEBOT_SIM_SPEED, resumed ahead of real time).
    wall_clock: Clock | None = None
    commands: dict[str, Command] = field(default_factory=dict)
    _pending: dict[str, _Pending] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.wall_clock is None:
            self.wall_clock = SystemClock() if isinstance(self.clock, AcceleratedClock) else self.clock
        for command in (
            Command("start", "Introduction and status", "/start", self._start),
            Command("help", "List the commands", "/help", self._help),
            Command("status", "Mode, state, equity, last cycle, data health", "/status", self._status),
            Command("positions", "Open positions with P&L", "/positions", self._positions),
            Command("orders", "Open orders (/orders all: recent orders)", "/orders [all]", self._orders),
            Command("trades", "Last N closed trades", "/trades [N]", self._trades),
            Command("pnl", "Profit and loss, Sharpe, drawdown, win rate", "/pnl", self._pnl),
            Command(
                "pause", "Stop new entries (exits keep working)", "/pause", self._pause, changes_state=True
            ),
            Command("resume", "Allow new entries again", "/resume", self._resume, changes_state=True),
            Command(
                "risk",
                "Show limits and where each comes from; change one, or reset it to its configured value",
                "/risk [set NAME VALUE | reset NAME|all]",
                self._risk,
                changes_state=True,
            ),
            Command("strategies", "Installed and running strategies", "/strategies", self._strategies),
            Command(
                "buy", "Buy at market (risk checks apply)", "/buy SYMBOL QTY", self._buy, changes_state=True
            ),
            Command("sell", "Sell at market", "/sell SYMBOL QTY|all", self._sell, changes_state=True),
            Command(
                "flatten", "Close every position at market", "/flatten", self._flatten, changes_state=True
            ),
            Command(
                "confirm",
                "Confirm a pending action (no ID: the only one)",
                "/confirm [ID]",
                self._confirm_cmd,
                changes_state=True,
            ),
            Command(
                "cancel",
                "Cancel a working order (its id from /orders), or a pending action",
                "/cancel ORDER_ID|CONFIRMATION_ID",
                self._cancel_cmd,
                changes_state=True,
            ),
        ):
            self.add(command)

    def human_now(self) -> datetime:
        """Human time, for message ages and confirmation deadlines (``wall_clock``)."""
        return (self.wall_clock or self.clock).now()

    def add(self, command: Command) -> None:
        """Register a command (the Telegram layer adds /chart, /equity, /alerts this way)."""
        self.commands[command.name] = command

    def menu(self) -> list[tuple[str, str]]:
        """(command, description) pairs for Telegram's setMyCommands."""
        return [(c.name, c.summary) for c in self.commands.values() if c.name != "confirm"]

    # ------------------------------------------------------------------ entry points

    def handle(self, text: str, caller: Caller) -> Reply:
        """Parse one line of text and answer it. Never raises: errors become a short reply."""
        words = text.strip().split()
        if not words or not words[0].startswith("/"):
            return Reply("Commands start with '/'. Send /help for the list.")
        name = words[0][1:].split("@", 1)[0].lower()
        if caller.forwarded:  # someone else's words, replayed: never a command of this user
            log.warning("ignoring a forwarded /%s from %s", name, caller.label)
            return Reply(f"/{name} ignored: forwarded messages are never run as commands. Send it yourself.")
        command = self.commands.get(name)
        if command is None:
            return Reply(f"Unknown command /{name}. Send /help for the list.")
        if command.changes_state and caller.sent_at is not None:
            age = self.human_now() - caller.sent_at
            if age > STALE_AFTER:
                log.warning("ignoring /%s sent %s ago while offline", name, age)
                return Reply(
                    f"/{name} ignored: sent while the bot was offline ({_ago(age)} ago). Send it again."
                )
        try:
            return command.handler(words[1:], caller)
        except UsageError as exc:
            return Reply(f"Usage: {command.usage}" + (f"\n{exc}" if str(exc) else ""))
        except DatabaseError as exc:  # the database is down: say so in one line, no traceback
            log.warning("command /%s failed: %s", name, exc)
            return Reply(f"/{name} failed: {exc}. Nothing was changed.")
        except Exception as exc:
            log.exception("command /%s failed", name)
            return Reply(
                f"/{name} failed: {type(exc).__name__}. The details are in the log; nothing was changed."
            )

    def confirm(self, token: str, caller: Caller) -> Reply:
        with self._lock:
            pending = self._pending.pop(token, None)
        if pending is None:
            return Reply("Nothing to confirm: unknown or already used.")
        if pending.caller.chat_id != caller.chat_id or pending.caller.transport != caller.transport:
            with self._lock:
                self._pending[token] = pending
            return Reply("This confirmation belongs to another chat.")
        if pending.caller.user_id is not None and caller.user_id != pending.caller.user_id:
            with self._lock:  # only the person who asked may confirm, whatever the chat allows
                self._pending[token] = pending
            return Reply("This confirmation belongs to the user who asked for it.")
        if self.human_now() > pending.expires_at:
            return Reply(f"Expired: {pending.summary} was not done. Send the command again.")
        return pending.action()

    def pending_for(self, caller: Caller) -> list[tuple[str, str]]:
        """(token, summary) of the unexpired actions this caller may confirm (their chat, their own)."""
        now = self.human_now()
        with self._lock:
            return [
                (token, p.summary)
                for token, p in self._pending.items()
                if p.caller.chat_id == caller.chat_id
                and p.caller.transport == caller.transport
                and p.caller.user_id in (None, caller.user_id)  # only the asker may confirm
                and p.expires_at >= now
            ]

    def cancel(self, token: str, caller: Caller) -> Reply:
        with self._lock:
            pending = self._pending.get(token)
            if pending is None or pending.caller.chat_id != caller.chat_id:
                return Reply("Nothing to cancel.")
            if pending.caller.user_id is not None and caller.user_id != pending.caller.user_id:
                return Reply("This confirmation belongs to the user who asked for it.")
            del self._pending[token]
        return Reply(f"Canceled: {pending.summary}.")

    def _ask(self, caller: Caller, summary: str, action: Callable[[], Reply]) -> Reply:
        token = secrets.token_hex(4)
        expires = self.human_now() + timedelta(seconds=self.confirm_ttl)
        with self._lock:
            now = self.human_now()
            for key in [k for k, p in self._pending.items() if p.expires_at < now]:
                del self._pending[key]
            self._pending[token] = _Pending(action, caller, expires, summary)
        prompt = f"Confirm: {summary}?"
        hint = (
            "" if caller.transport == "telegram" else f"\nSend /confirm {token} within {self.confirm_ttl:g}s."
        )
        return Reply(prompt + hint, confirmation=Confirmation(token, prompt, expires))

    # ------------------------------------------------------------------ handlers

    def _start(self, args: list[str], caller: Caller) -> Reply:
        return Reply(fmt.welcome(self.service.status()))

    def _help(self, args: list[str], caller: Caller) -> Reply:
        return Reply(fmt.help_text([(c.usage, c.summary) for c in self.commands.values()]))

    def _status(self, args: list[str], caller: Caller) -> Reply:
        return Reply(fmt.status(self.service.status()))

    def _positions(self, args: list[str], caller: Caller) -> Reply:
        return Reply(fmt.positions(self.service.positions()))

    def _orders(self, args: list[str], caller: Caller) -> Reply:
        if args and args[0].lower() != "all":
            raise UsageError()
        everything = bool(args)
        return Reply(fmt.orders(self.service.orders(open_only=not everything), open_only=not everything))

    def _trades(self, args: list[str], caller: Caller) -> Reply:
        count = _positive_int(args[0]) if args else 10
        if count is None or len(args) > 1:
            raise UsageError("N is a whole number from 1 to 100.")
        simulated = self.service.broker.mode == "sim"
        return Reply(fmt.trades(self.service.trades(min(count, 100)), simulated=simulated))

    def _pnl(self, args: list[str], caller: Caller) -> Reply:
        return Reply(fmt.pnl(self.service.pnl()))

    def _pause(self, args: list[str], caller: Caller) -> Reply:
        changed = self.service.pause(by=caller.label)
        return Reply(
            "Paused: no new entries. Stops, targets and exits keep working." if changed else "Already paused."
        )

    def _resume(self, args: list[str], caller: Caller) -> Reply:
        return Reply(
            "Resumed: new entries allowed." if self.service.resume(by=caller.label) else "Not paused."
        )

    def _risk(self, args: list[str], caller: Caller) -> Reply:
        if not args:
            return Reply(fmt.risk(self.service.risk_view(), simulated=self.service.broker.mode == "sim"))
        if len(args) == 2 and args[0].lower() == "reset":
            return self._risk_reset(args[1].lower(), caller)
        if len(args) != 3 or args[0].lower() != "set":
            raise UsageError("Example: /risk set max_open_trades 3  or  /risk reset all")
        name, raw = args[1].lower(), args[2]
        value = _number(raw)
        if value is None:
            raise UsageError(f"{raw!r} is not a number.")
        try:
            self.service.limits().with_value(name, value)  # validate before asking
        except ValueError as exc:
            return Reply(f"Not changed: {exc}.")

        def apply() -> Reply:
            try:
                limits = self.service.set_risk(name, value, by=caller.label)
            except ValueError as exc:
                return Reply(f"Not changed: {exc}.")
            return Reply(f"Risk limit {name} is now {getattr(limits, name):g}.")

        return self._ask(caller, f"set {name} to {value:g}", apply)

    def _risk_reset(self, name: str, caller: Caller) -> Reply:
        origins = self.service.risk_view().origins
        if name != "all" and name not in origins:
            return Reply(f"Not changed: unknown limit {name!r}: one of {', '.join(origins)} or all.")
        names = [n for n, o in origins.items() if o.overridden and name in ("all", n)]
        if not names:
            return Reply(
                "Nothing to reset: " + ("no limit is" if name == "all" else f"{name} is not") + " overridden."
            )
        what = ", ".join(f"{n} to {origins[n].configured:g}" for n in names)

        def apply() -> Reply:
            dropped = self.service.reset_risk(name, by=caller.label)
            return Reply("Back to the configured values: " + (", ".join(dropped) or "nothing to reset") + ".")

        return self._ask(caller, f"reset {what}", apply)

    def _strategies(self, args: list[str], caller: Caller) -> Reply:
        return Reply(fmt.strategies(self.registry, self.service.strategies))

    def _buy(self, args: list[str], caller: Caller) -> Reply:
        if len(args) != 2:
            raise UsageError("Example: /buy AAPL 10")
        symbol, qty = args[0].upper(), _number(args[1])
        if qty is None or qty <= 0:
            raise UsageError(f"{args[1]!r} is not a positive quantity.")
        request = _request_id(caller)
        early = self.service.preview_manual(
            symbol, Side.BUY, qty, request
        )  # answered now, not after a question
        if early is not None:
            return Reply(
                fmt.outcome(early)
                if early.status is OutcomeStatus.DUPLICATE
                else f"Not bought: {early.message}."
            )

        def apply() -> Reply:
            return Reply(
                fmt.outcome(self.service.place_manual(symbol, Side.BUY, qty, request, by=caller.label))
            )

        return self._ask(caller, f"buy {fmt.qty(qty)} {symbol} at market", apply)

    def _sell(self, args: list[str], caller: Caller) -> Reply:
        if len(args) != 2:
            raise UsageError("Example: /sell AAPL 10  or  /sell AAPL all")
        symbol = args[0].upper()
        qty = None if args[1].lower() == "all" else _number(args[1])
        if args[1].lower() != "all" and (qty is None or qty <= 0):
            raise UsageError(f"{args[1]!r} is not a positive quantity or 'all'.")
        request = _request_id(caller)
        early = self.service.preview_manual(symbol, Side.SELL, qty, request)
        if early is not None:
            return Reply(
                fmt.outcome(early)
                if early.status is OutcomeStatus.DUPLICATE
                else f"Not sold: {early.message}."
            )

        def apply() -> Reply:
            return Reply(
                fmt.outcome(self.service.place_manual(symbol, Side.SELL, qty, request, by=caller.label))
            )

        return self._ask(caller, f"sell {'all' if qty is None else fmt.qty(qty)} {symbol} at market", apply)

    def _flatten(self, args: list[str], caller: Caller) -> Reply:
        positions = self.service.positions()
        if not positions:
            return Reply("No open positions: nothing to close.")
        request = _request_id(caller)

        def apply() -> Reply:
            outcomes = self.service.flatten(request, by=caller.label)
            return Reply("Flatten:\n" + "\n".join(fmt.outcome(o) for o in outcomes))

        names = ", ".join(p.symbol for p in positions)
        which = "the 1 position" if len(positions) == 1 else f"all {len(positions)} positions"
        return self._ask(caller, f"close {which} ({names}) at market", apply)

    def _confirm_cmd(self, args: list[str], caller: Caller) -> Reply:
        if len(args) > 1:
            raise UsageError()
        if args:
            return self.confirm(args[0], caller)
        waiting = self.pending_for(caller)  # no ID: the only action waiting in this chat, if one
        if not waiting:
            return Reply("Nothing to confirm.")
        if len(waiting) > 1:
            listed = "\n".join(f"/confirm {token}: {summary}" for token, summary in waiting)
            return Reply(f"{len(waiting)} actions wait for confirmation; name one:\n{listed}")
        return self.confirm(waiting[0][0], caller)

    def _cancel_cmd(self, args: list[str], caller: Caller) -> Reply:
        if len(args) != 1:
            raise UsageError("ORDER_ID: an open order's id, as /orders shows it.")
        with self._lock:
            confirmation = args[0] in self._pending
        if confirmation:
            return self.cancel(args[0], caller)
        return self._cancel_order(args[0], caller)

    def _cancel_order(self, client_order_id: str, caller: Caller) -> Reply:
        refusal = self.service.cancel_refusal(client_order_id)
        order = self.service.order(client_order_id)
        if refusal or order is None:
            return Reply(f"Not canceled: {refusal or f'no order {client_order_id}'}.")
        filled = f", {fmt.qty(order.filled_qty)} filled" if order.filled_qty else ""
        summary = (
            f"cancel {order.side.value} {fmt.qty(order.qty)} {order.symbol} "
            f"({order.status.value}{filled}; what filled stays) {client_order_id}"
        )

        def apply() -> Reply:
            return Reply(fmt.outcome(self.service.cancel_order(client_order_id, by=caller.label)))

        return self._ask(caller, summary, apply)


def _request_id(caller: Caller) -> str:
    """Identifies one request, so a replayed message maps to the same order id."""
    if caller.message_id is not None:
        return f"{caller.transport}:{caller.chat_id}:{caller.message_id}"
    return f"{caller.transport}:{secrets.token_hex(6)}"


def _number(text: str) -> float | None:
    if not text.isascii():  # float() would read "١٠" or "１０" as 10
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _positive_int(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 and int(text) > 0 else None


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 60} min" if seconds >= 120 else f"{seconds} s"
