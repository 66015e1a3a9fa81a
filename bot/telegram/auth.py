"""Who may use the bot: refuse by default, in one place, before any handler runs.

Rules (``AllowList.check``):

* The chat must be in ``TELEGRAM_ALLOWED_CHAT_IDS``. Empty list: nobody.
* In a group, supergroup or channel, the sender must also be in ``TELEGRAM_ALLOWED_USER_IDS``
  (otherwise any member of an allowed group could trade). Empty list: nobody in groups.
* Button presses (callback queries) pass the same check as messages, with the presser as sender.
* In a private chat the sender must be the chat: Telegram never delivers anything else (a private
  chat's id is its user's id, Bot API "Chat"), so an update that says otherwise is forged or
  broken, and refused (defence in depth).

Refused updates get no answer at all. Each refusal is logged and recorded as an UNAUTHORIZED
event, at most once per sender every ``per_sender_seconds`` and at most ``per_hour`` in all,
so a flood cannot fill the log or the database.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from telegram import Update

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Access:
    allowed: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Attempt:
    """Who tried what, in words and numbers a log line and an event can carry."""

    chat_id: int | None
    chat_type: str
    user_id: int | None
    username: str
    what: str  # the command text or "button ..."

    def describe(self) -> str:
        who = f"user {self.user_id}" + (f" (@{self.username})" if self.username else "")
        return f"{self.what!r} from {who} in {self.chat_type} chat {self.chat_id}"


class AllowList:
    def __init__(self, chat_ids: Iterable[int], user_ids: Iterable[int]) -> None:
        self.chat_ids = frozenset(int(c) for c in chat_ids)
        self.user_ids = frozenset(int(u) for u in user_ids)

    def check(self, chat_id: int | None, chat_type: str, user_id: int | None) -> Access:
        if chat_id is None or chat_id not in self.chat_ids:
            return Access(False, "chat not in TELEGRAM_ALLOWED_CHAT_IDS")
        if chat_type == "private" and user_id != chat_id:
            return Access(False, "a private chat whose sender is not the chat's user")
        if chat_type != "private" and (user_id is None or user_id not in self.user_ids):
            return Access(False, "group member not in TELEGRAM_ALLOWED_USER_IDS")
        return Access(True)

    def check_update(self, update: Update) -> tuple[Access, Attempt]:
        chat = update.effective_chat
        user = update.effective_user
        attempt = Attempt(
            chat_id=chat.id if chat else None,
            chat_type=chat.type if chat else "unknown",
            user_id=user.id if user else None,
            username=(user.username or "") if user else "",
            what=_what(update),
        )
        return self.check(attempt.chat_id, attempt.chat_type, attempt.user_id), attempt


def _what(update: Update) -> str:
    if update.callback_query is not None:
        return f"button {str(update.callback_query.data or '')[:20]}"
    message = update.effective_message
    text = (message.text or message.caption or "") if message else ""
    return text[:80] or update.effective_message.__class__.__name__.lower()


class RefusalLog:
    """Rate-limits what refused attempts leave behind: log lines and UNAUTHORIZED events."""

    def __init__(
        self,
        per_sender_seconds: float = 600.0,
        per_hour: int = 20,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_sender_seconds = per_sender_seconds
        self.per_hour = per_hour
        self._monotonic = monotonic
        self._last: dict[tuple[int | None, int | None], float] = {}
        self._recent: deque[float] = deque()
        self.suppressed = 0

    def should_record(self, attempt: Attempt) -> bool:
        now = self._monotonic()
        while self._recent and now - self._recent[0] > 3600:
            self._recent.popleft()
        key = (attempt.chat_id, attempt.user_id)
        last = self._last.get(key)
        if (last is not None and now - last < self.per_sender_seconds) or len(self._recent) >= self.per_hour:
            self.suppressed += 1
            return False
        if len(self._last) > 10_000:  # bounded memory under a flood of distinct senders
            self._last.clear()
        self._last[key] = now
        self._recent.append(now)
        return True

    def take_suppressed(self) -> int:
        count, self.suppressed = self.suppressed, 0
        return count
