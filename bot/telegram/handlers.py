"""Thin Telegram handlers: allow-list check, build a ``Caller``, ask the router (in a worker thread), send.

Every command goes through ``CommandRouter.handle``, the same path as the console; nothing
here parses arguments or formats answers. Confirmations are inline buttons whose
``callback_data`` is ``c:<token>`` (confirm) or ``x:<token>`` (cancel), a dozen bytes. A press
is answered first, then the prompt is edited to show the outcome (which removes the
buttons). A prompt nobody answers is edited to "Expired" when its time is up. A press on a
question whose action is no longer what it showed (the state changed) edits the prompt to say
nothing was done, and the new question follows in a message with buttons of its own.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest, TelegramError
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    BaseUpdateProcessor,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.commands import Caller, CommandRouter, Reply
from bot.domain import EventKind, Severity
from bot.service import TradingService
from bot.telegram.auth import AllowList, RefusalLog
from bot.telegram.sending import MAX_CAPTION, RateLimiter, split_text, with_retry

log = logging.getLogger(__name__)

T = TypeVar("T")

BUTTON_DATA = re.compile(r"^([cx]):([0-9a-f]{1,32})$")
EXPIRED_TEXT = "Expired: not done. Send the command again."


def caller_of(update: Update) -> Caller:
    """Who sent this update: for messages with the send time, so stale commands can be refused."""
    chat, user = update.effective_chat, update.effective_user
    name = ""
    if user is not None:
        name = f"@{user.username}" if user.username else user.full_name
    if update.callback_query is not None:
        message = update.callback_query.message
        sent_at: datetime | None = None  # a press is judged by the prompt's own expiry
    else:
        message = update.effective_message
        sent_at = message.date if message is not None else None
    # A forwarded message carries the original's date (the stale check uses it) and is never run.
    origin = getattr(message, "forward_origin", None) if update.callback_query is None else None
    if origin is not None and getattr(origin, "date", None) is not None:
        sent_at = origin.date
    return Caller(
        transport="telegram",
        chat_id=chat.id if chat else None,
        user_id=user.id if user else None,
        name=name,
        sent_at=sent_at,
        message_id=message.message_id if message is not None else None,
        forwarded=origin is not None,
    )


def confirm_keyboard(token: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("Confirm", callback_data=f"c:{token}"),
                InlineKeyboardButton("Cancel", callback_data=f"x:{token}"),
            ]
        ]
    )


@dataclass(slots=True)
class _Prompt:
    chat_id: int
    message_id: int
    text: str
    timer: asyncio.TimerHandle


class PerChatUpdateProcessor(BaseUpdateProcessor):
    """Updates from different chats run concurrently; those of one chat run in arrival order.

    A slow /chart in one chat does not hold up /status in another, and a chat's own commands
    are never reordered.
    """

    def __init__(self, max_concurrent_updates: int = 32) -> None:
        super().__init__(max_concurrent_updates)
        self._locks: dict[int, asyncio.Lock] = {}
        self._users: dict[int, int] = {}

    async def do_process_update(self, update: object, coroutine: object) -> None:
        chat = update.effective_chat if isinstance(update, Update) else None
        if chat is None:
            await coroutine  # type: ignore[misc]
            return
        lock = self._locks.setdefault(chat.id, asyncio.Lock())
        self._users[chat.id] = self._users.get(chat.id, 0) + 1
        try:
            async with lock:
                await coroutine  # type: ignore[misc]
        finally:
            self._users[chat.id] -= 1
            if not self._users[chat.id]:
                del self._users[chat.id], self._locks[chat.id]

    async def initialize(self) -> None:
        """Nothing to set up: the per-chat locks are created on demand."""

    async def shutdown(self) -> None:
        """Nothing to release."""


class Handlers:
    def __init__(
        self,
        router: CommandRouter,
        service: TradingService,
        allow_list: AllowList,
        limiter: RateLimiter,
        refusals: RefusalLog | None = None,
    ) -> None:
        self.router = router
        self.service = service
        self.allow_list = allow_list
        self.limiter = limiter
        self.refusals = refusals or RefusalLog()
        self._prompts: dict[str, _Prompt] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def register(self, application: Application) -> None:
        application.add_handler(TypeHandler(Update, self.check_access), group=-1)
        application.add_handler(MessageHandler(filters.COMMAND & filters.UpdateType.MESSAGE, self.on_command))
        application.add_handler(CallbackQueryHandler(self.on_button, pattern=BUTTON_DATA))
        application.add_error_handler(self.on_error)

    # ------------------------------------------------------------------ the allow-list

    async def check_access(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        access, attempt = self.allow_list.check_update(update)
        if access.allowed:
            return
        if self.refusals.should_record(attempt):
            more = self.refusals.take_suppressed()
            text = f"Refused {attempt.describe()}: {access.reason}."
            if more:
                text += f" ({more} more refused attempts were not recorded.)"
            try:
                await asyncio.to_thread(
                    self.service.emit,
                    EventKind.UNAUTHORIZED,
                    text,
                    severity=Severity.WARNING,
                    chat_id=attempt.chat_id,
                    user_id=attempt.user_id,
                )
            except Exception:
                log.exception("could not record a refused attempt: %s", text)
        raise ApplicationHandlerStop  # no handler runs, nothing is answered

    # ------------------------------------------------------------------ commands

    async def on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or not message.text or not _addressed_to(message.text, context.bot):
            return
        reply = await asyncio.to_thread(self.router.handle, message.text, caller_of(update))
        await self.send_reply(context.bot, message.chat_id, reply)

    async def send_reply(self, bot: Bot, chat_id: int, reply: Reply) -> None:
        if reply.photo is not None:
            photo = reply.photo
            caption = reply.text if len(reply.text) <= MAX_CAPTION else None
            await self._send(lambda: bot.send_photo(chat_id, photo=photo, caption=caption))
            if caption is None:
                await self._send_text(bot, chat_id, reply.text)
            return
        if reply.confirmation is not None:
            token = reply.confirmation.token
            sent = await self._send(
                lambda: bot.send_message(chat_id, reply.text, reply_markup=confirm_keyboard(token))
            )
            self._track(bot, token, sent, reply.text, reply.confirmation.expires_at)
            return
        await self._send_text(bot, chat_id, reply.text)

    async def _send_text(self, bot: Bot, chat_id: int, text: str) -> None:
        for piece in split_text(text):
            await self._send(functools.partial(bot.send_message, chat_id, piece))

    async def _send(self, call: Callable[[], Awaitable[T]]) -> T:
        """Every request of the handlers: paced by the rate limiter, retried after a 429."""
        await self.limiter.acquire(None)
        return await with_retry(call, "reply")

    # ------------------------------------------------------------------ confirmation buttons

    def _track(self, bot: Bot, token: str, message: Message, text: str, expires_at: datetime) -> None:
        delay = max(0.0, (expires_at - self.router.human_now()).total_seconds())
        timer = asyncio.get_running_loop().call_later(delay, self._spawn_expiry, bot, token)
        self._prompts[token] = _Prompt(message.chat_id, message.message_id, text, timer)

    def _spawn_expiry(self, bot: Bot, token: str) -> None:
        task = asyncio.ensure_future(self._expire(bot, token))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _expire(self, bot: Bot, token: str) -> None:
        prompt = self._prompts.pop(token, None)
        if prompt is None:  # answered in time
            return
        # The router's own deadline refuses a late press ("Expired: ... was not done").
        try:
            await self._send(
                lambda: bot.edit_message_text(
                    f"{prompt.text}\n\n{EXPIRED_TEXT}", chat_id=prompt.chat_id, message_id=prompt.message_id
                )
            )
        except TelegramError as exc:
            log.warning("could not mark a confirmation as expired in chat %s: %s", prompt.chat_id, exc)

    async def on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        match = BUTTON_DATA.match(query.data or "") if query is not None else None
        if query is None or match is None:
            return
        try:
            await self._send(query.answer)  # paced like every other request
        except BadRequest as exc:  # "query is too old": the press still counts
            log.info("could not answer a button press: %s", exc)
        action, token = match.groups()
        prompt = self._prompts.pop(token, None)
        if prompt is not None:
            prompt.timer.cancel()
        decide = self.router.confirm if action == "c" else self.router.cancel
        reply = await asyncio.to_thread(decide, token, caller_of(update))
        original = prompt.text if prompt is not None else getattr(query.message, "text", None) or ""
        # The state changed since the question: nothing was done. The old prompt says so (and
        # loses its buttons); the new question follows as a message with buttons of its own.
        outcome = reply.confirmation.replaces if reply.confirmation is not None else reply.text
        text = f"{original}\n\n{outcome}".strip()
        try:
            await self._send(lambda: query.edit_message_text(text))
        except BadRequest as exc:
            if "not modified" not in str(exc).lower():
                log.info("could not edit the prompt (%s); answering in a new message", exc)
                if update.effective_chat is not None and reply.confirmation is None:
                    await self._send_text(context.bot, update.effective_chat.id, reply.text)
        if reply.confirmation is not None and update.effective_chat is not None:
            question = Reply(reply.confirmation.prompt, confirmation=reply.confirmation)
            await self.send_reply(context.bot, update.effective_chat.id, question)

    # ------------------------------------------------------------------ errors

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        error = context.error
        log.error("Telegram handler failed: %s", type(error).__name__, exc_info=error)
        if not isinstance(update, Update) or update.effective_chat is None:
            return
        if not self.allow_list.check_update(update)[0].allowed:
            return
        chat_id = update.effective_chat.id
        text = f"Sorry, that failed ({type(error).__name__}). The details are in the log."
        try:
            await self._send(lambda: context.bot.send_message(chat_id, text))
        except TelegramError as exc:
            log.warning("could not report the failure to chat %s: %s", update.effective_chat.id, exc)


def _addressed_to(text: str, bot: Bot) -> bool:
    """``/status`` and ``/status@ourbot`` are ours; ``/status@otherbot`` (a group with two bots) is not."""
    _, _, mention = text.split(maxsplit=1)[0].partition("@")
    return not mention or mention.lower() == (bot.username or "").lower()
