"""Transport-neutral chat commands: parse, call the service, format. Nothing else.

The console and Telegram both hand text to ``CommandRouter.handle`` and send back the
``Reply`` objects it returns. Handlers are synchronous (the service is); transports call
them through ``asyncio.to_thread``.

Dangerous commands (/buy, /sell, /flatten, /cancel ORDER_ID, /risk set|reset) do not act at once:
they return a ``Confirmation`` the transport shows as a button (Telegram, the web) or as
``/confirm ID`` (console), valid for ``confirm_ttl`` seconds, for the same chat and user only.

One confirmation rule for every transport: a confirmation does exactly what it showed. Each
command computes its ``Question`` from the state now: the words shown, the exact action
(``what``: symbols, quantities, order ids, values) and the function that does it. On confirm
the question is computed again, holding the service's lock (``TradingService.exclusive``) so
nothing changes between that check and the action; if the action is no longer the one shown
(a third position opened before /flatten was confirmed, a position grew before /sell all),
nothing is done and the new question is asked instead, with its own confirmation.
"""

from __future__ import annotations

import difflib
import logging
import math
import secrets
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot import formatting as fmt
from bot.clock import AcceleratedClock, Clock, SystemClock
from bot.domain import OutcomeStatus, Side
from bot.plugins import Registry
from bot.service import TradingService
from bot.views import OrderOutcome
from storage.db import DatabaseError

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(seconds=60)
EXPIRED_KEPT = timedelta(hours=1)  # an expired question is remembered this long, to say what it was


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
    # Set when this question replaces one that was confirmed after the state changed: why the
    # earlier one was not done ("Not done: ..."). Telegram writes it under the old prompt.
    replaces: str = ""
    # How long it is valid from when it was asked: a browser counts down from this, not from
    # ``expires_at`` against its own clock, which may be off from the server's.
    seconds: float = 60.0


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


@dataclass(frozen=True, slots=True)
class Question:
    """What a dangerous command would do if confirmed now.

    ``summary`` is the words shown ("close all 2 positions (10 AAPL, 0.5 BTC/USD) at market");
    ``what`` is the exact action (symbols, quantities, ids, values), compared on confirm;
    ``act`` does it.
    """

    summary: str
    what: Hashable
    act: Callable[[], Reply]


# Computes the question from the state now, or the answer when there is nothing to ask (a refusal).
Asker = Callable[[], "Question | Reply"]


@dataclass(slots=True)
class _Pending:
    ask: Asker
    question: Question
    caller: Caller
    expires_at: datetime

    @property
    def summary(self) -> str:
        return self.question.summary


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
                "Cancel a working order (its id from /orders), or the question waiting (no id)",
                "/cancel [ORDER_ID|CONFIRMATION_ID]",
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
            guess = self._did_you_mean(name)
            return Reply(
                f"Unknown command /{name}: did you mean /{guess}? Send /help for the list."
                if guess
                else f"Unknown command /{name}. Send /help for the list."
            )
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

    def _did_you_mean(self, name: str) -> str:
        """The command a near miss meant (a typo, a letter left out), else ``""``."""
        names = [n for n in self.commands if n != "confirm"] + ["confirm"]
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        if not close:  # "/pos": the start of exactly one command
            starts = [n for n in names if len(name) >= 2 and n.startswith(name)]
            close = starts if len(starts) == 1 else []
        return close[0] if close else ""

    def confirm(self, token: str, caller: Caller) -> Reply:
        """Do what the question ``token`` showed, if it is still exactly what would be done;
        otherwise do nothing and ask the new question (see the module's docstring)."""
        with self._lock:
            pending = self._pending.get(token)
            refusal = self._not_yours(pending, caller) if pending is not None else None
            if pending is not None and refusal is None:
                del self._pending[token]
        if pending is None:
            return Reply("Nothing to confirm: unknown or already used.")
        if refusal is not None:
            return Reply(refusal)
        if self.human_now() > pending.expires_at:
            return Reply(_expired(pending))
        # Nothing may change between this check and the action: no cycle, no sync, no other
        # chat's order runs while the service's lock is held (the actions take it again: RLock).
        with self.service.exclusive():
            now = pending.ask()
            if isinstance(now, Reply):  # the state changed so far that nothing would be done now
                return Reply(f"Not done: {pending.summary} is no longer possible.\n{now.text}")
            if now.what != pending.question.what:
                return self._register(
                    caller,
                    pending.ask,
                    now,
                    replaces=f"Not done: things changed since you were asked to {pending.summary}.",
                )
            return pending.question.act()

    def _not_yours(self, pending: _Pending, caller: Caller) -> str | None:
        if pending.caller.chat_id != caller.chat_id or pending.caller.transport != caller.transport:
            return "This confirmation belongs to another chat."
        if pending.caller.user_id is not None and caller.user_id != pending.caller.user_id:
            return "This confirmation belongs to the user who asked for it."  # whatever the chat allows
        return None

    def _mine(self, caller: Caller) -> list[tuple[str, _Pending]]:
        """The questions this caller may answer (their chat, their own), expired ones included."""
        with self._lock:
            return [(t, p) for t, p in self._pending.items() if self._not_yours(p, caller) is None]

    def pending_for(self, caller: Caller) -> list[tuple[str, str]]:
        """(token, summary) of the unexpired actions this caller may confirm (their chat, their own)."""
        now = self.human_now()
        return [(token, p.summary) for token, p in self._mine(caller) if p.expires_at >= now]

    def cancel(self, token: str, caller: Caller) -> Reply:
        with self._lock:
            pending = self._pending.get(token)
            if pending is None or pending.caller.chat_id != caller.chat_id:
                return Reply("Nothing to cancel.")
            refusal = self._not_yours(pending, caller)
            if refusal is not None:
                return Reply(refusal)
            del self._pending[token]
        if self.human_now() > pending.expires_at:
            return Reply(f"Nothing to cancel. {_expired(pending)}")
        return Reply(f"Canceled: {pending.summary}.")

    def _ask(self, caller: Caller, ask: Asker) -> Reply:
        """Compute the question now; ask it, or answer at once when there is nothing to ask."""
        question = ask()
        if isinstance(question, Reply):
            return question
        return self._register(caller, ask, question)

    def _register(self, caller: Caller, ask: Asker, question: Question, replaces: str = "") -> Reply:
        token = secrets.token_hex(4)
        now = self.human_now()
        expires = now + timedelta(seconds=self.confirm_ttl)
        with self._lock:
            for key in [k for k, p in self._pending.items() if p.expires_at < now - EXPIRED_KEPT]:
                del self._pending[key]
            self._pending[token] = _Pending(ask, question, caller, expires)
        prompt = f"Confirm: {question.summary}?"
        hint = (
            f"\nSend /confirm {token} within {self.confirm_ttl:g}s." if caller.transport == "console" else ""
        )
        text = (f"{replaces}\n" if replaces else "") + prompt + hint
        return Reply(text, confirmation=Confirmation(token, prompt, expires, replaces, self.confirm_ttl))

    # ------------------------------------------------------------------ handlers

    def _start(self, args: list[str], caller: Caller) -> Reply:
        return Reply(fmt.welcome(self.service.status()))

    def _help(self, args: list[str], caller: Caller) -> Reply:
        return Reply(fmt.help_text([(c.usage, c.summary) for c in self.commands.values()]))

    def _status(self, args: list[str], caller: Caller) -> Reply:
        return Reply(fmt.status(self.service.status()))

    def _positions(self, args: list[str], caller: Caller) -> Reply:
        return Reply(fmt.positions(self.service.marked_positions()))

    def _orders(self, args: list[str], caller: Caller) -> Reply:
        if args and args[0].lower() != "all":
            raise UsageError()
        everything = bool(args)
        simulated = self.service.broker.mode == "sim"
        return Reply(
            fmt.orders(
                self.service.orders(open_only=not everything), open_only=not everything, simulated=simulated
            )
        )

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
            name = args[1].lower()
            return self._ask(caller, lambda: self._risk_reset(name, caller))
        if len(args) != 3 or args[0].lower() != "set":
            raise UsageError("Example: /risk set max_open_trades 3  or  /risk reset all")
        name, raw = args[1].lower(), args[2]
        value = _number(raw)
        if value is None:
            raise UsageError(f"{raw!r} is not a number.")
        return self._ask(caller, lambda: self._risk_set(name, value, caller))

    def _risk_set(self, name: str, value: float, caller: Caller) -> Question | Reply:
        limits = self.service.limits()
        try:
            limits.with_value(name, value)  # validate before asking
        except ValueError as exc:
            return Reply(f"Not changed: {exc}.")
        current = float(getattr(limits, name))

        def apply() -> Reply:
            try:
                changed = self.service.set_risk(name, value, by=caller.label)
            except ValueError as exc:
                return Reply(f"Not changed: {exc}.")
            return Reply(f"Risk limit {name} is now {getattr(changed, name):g}.")

        return Question(f"set {name} from {current:g} to {value:g}", (name, current, value), apply)

    def _risk_reset(self, name: str, caller: Caller) -> Question | Reply:
        view = self.service.risk_view()
        origins = view.origins
        if name != "all" and name not in origins:
            return Reply(f"Not changed: unknown limit {name!r}: one of {', '.join(origins)} or all.")
        names = [n for n, o in origins.items() if o.overridden and name in ("all", n)]
        if not names:
            return Reply(
                "Nothing to reset: " + ("no limit is" if name == "all" else f"{name} is not") + " overridden."
            )
        changes = [(n, float(view.limits[n]), float(origins[n].configured)) for n in names]
        what = ", ".join(f"{n} from {now:g} to {configured:g}" for n, now, configured in changes)

        def apply() -> Reply:
            dropped = self.service.reset_risk(name, by=caller.label)
            return Reply("Back to the configured values: " + (", ".join(dropped) or "nothing to reset") + ".")

        return Question(f"reset {what}", tuple(changes), apply)

    def _strategies(self, args: list[str], caller: Caller) -> Reply:
        return Reply(fmt.strategies(self.registry, self.service.strategies))

    def _buy(self, args: list[str], caller: Caller) -> Reply:
        if len(args) != 2:
            raise UsageError("Example: /buy AAPL 10")
        symbol, qty = args[0].upper(), _number(args[1])
        if qty is None or qty <= 0:
            raise UsageError(f"{args[1]!r} is not a positive quantity.")
        request = _request_id(caller)

        def ask() -> Question | Reply:
            early = self.service.preview_manual(symbol, Side.BUY, qty, request)  # answered now, not after
            if early is not None:
                return _early(early, "Not bought")

            def apply() -> Reply:
                outcome = self.service.place_manual(symbol, Side.BUY, qty, request, by=caller.label)
                return Reply(fmt.outcome(outcome))

            return Question(f"buy {fmt.qty(qty)} {symbol} at market", (symbol, qty), apply)

        return self._ask(caller, ask)

    def _sell(self, args: list[str], caller: Caller) -> Reply:
        if len(args) != 2:
            raise UsageError("Example: /sell AAPL 10  or  /sell AAPL all")
        symbol = args[0].upper()
        qty = None if args[1].lower() == "all" else _number(args[1])
        if args[1].lower() != "all" and (qty is None or qty <= 0):
            raise UsageError(f"{args[1]!r} is not a positive quantity or 'all'.")
        request = _request_id(caller)

        def ask() -> Question | Reply:
            early = self.service.preview_manual(symbol, Side.SELL, qty, request)
            if early is not None:
                return _early(early, "Not sold")
            held = self.service.position(symbol)
            whole = held.qty if held is not None else 0.0
            shown = f"all {fmt.qty(whole)}" if qty is None else fmt.qty(qty)

            def apply() -> Reply:
                # "all" is the quantity shown: the service re-reads the position under the same
                # lock this runs under, so "all" cannot have become more.
                outcome = self.service.place_manual(symbol, Side.SELL, qty, request, by=caller.label)
                return Reply(fmt.outcome(outcome))

            what = (symbol, "all", whole) if qty is None else (symbol, qty)
            return Question(f"sell {shown} {symbol} at market", what, apply)

        return self._ask(caller, ask)

    def _flatten(self, args: list[str], caller: Caller) -> Reply:
        request = _request_id(caller)

        def ask() -> Question | Reply:
            positions = sorted(self.service.positions(), key=lambda p: p.symbol)
            if not positions:
                return Reply("No open positions: nothing to close.")

            def apply() -> Reply:
                outcomes = self.service.flatten(request, by=caller.label)
                return Reply("Flatten:\n" + "\n".join(fmt.outcome(o) for o in outcomes))

            held = ", ".join(f"{fmt.qty(p.qty)} {p.symbol}" for p in positions)
            which = "the 1 position" if len(positions) == 1 else f"all {len(positions)} positions"
            return Question(
                f"close {which} ({held}) at market", tuple((p.symbol, p.qty) for p in positions), apply
            )

        return self._ask(caller, ask)

    def _confirm_cmd(self, args: list[str], caller: Caller) -> Reply:
        if len(args) > 1:
            raise UsageError()
        if args:
            return self.confirm(args[0], caller)
        waiting = self.pending_for(caller)  # no ID: the only action waiting in this chat, if one
        if not waiting:
            return Reply(self._expired_note(caller) or "Nothing to confirm.")
        if len(waiting) > 1:
            listed = "\n".join(f"/confirm {token}: {summary}" for token, summary in waiting)
            return Reply(f"{len(waiting)} actions wait for confirmation; name one:\n{listed}")
        return self.confirm(waiting[0][0], caller)

    def _expired_note(self, caller: Caller) -> str:
        """Say what the caller's questions that ran out of time were (once), else ``""``."""
        now = self.human_now()
        expired = [(t, p) for t, p in self._mine(caller) if p.expires_at < now]
        with self._lock:
            for token, _ in expired:
                self._pending.pop(token, None)
        return "\n".join(_expired(p) for _, p in expired)

    def _cancel_cmd(self, args: list[str], caller: Caller) -> Reply:
        if len(args) > 1:
            raise UsageError("ORDER_ID: an open order's id, as /orders shows it.")
        if not args:  # no id: drop the question waiting in this chat
            waiting = self.pending_for(caller)
            if len(waiting) == 1:
                return self.cancel(waiting[0][0], caller)
            if waiting:
                listed = "\n".join(f"/cancel {token}: {summary}" for token, summary in waiting)
                return Reply(f"{len(waiting)} actions wait for confirmation; name one:\n{listed}")
            expired = self._expired_note(caller)
            if expired:
                return Reply(f"Nothing to cancel.\n{expired}")
            raise UsageError("ORDER_ID: an open order's id, as /orders shows it. No question is waiting.")
        with self._lock:
            confirmation = args[0] in self._pending
        if confirmation:
            return self.cancel(args[0], caller)
        client_order_id = args[0]
        return self._ask(caller, lambda: self._cancel_order(client_order_id, caller))

    def _cancel_order(self, client_order_id: str, caller: Caller) -> Question | Reply:
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

        what = (client_order_id, order.status.value, order.qty, order.filled_qty)
        return Question(summary, what, apply)


def _early(outcome: OrderOutcome, refused: str) -> Reply:
    """``preview_manual``'s answer as the reply: "Already done" for a replay, else the refusal."""
    if outcome.status is OutcomeStatus.DUPLICATE:
        return Reply(fmt.outcome(outcome))
    return Reply(f"{refused}: {outcome.message}.")


def _expired(pending: _Pending) -> str:
    return f"Expired: {pending.summary} was not done. Send the command again."


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
