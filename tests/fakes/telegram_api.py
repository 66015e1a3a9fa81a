"""A small fake Telegram Bot API server for end-to-end tests of the real python-telegram-bot.

It listens on 127.0.0.1 on a free port, in a background thread, and answers what tradebot
calls: getMe, deleteWebhook, setWebhook, getUpdates (long polling), setMyCommands,
getMyCommands, sendMessage, sendPhoto (multipart, bytes kept), answerCallbackQuery,
editMessageText, editMessageReplyMarkup. Point the bot at it with
``TELEGRAM_BASE_URL=server.base_url``.

Tests queue updates with ``command``/``text``/``press`` (commands carry the ``bot_command``
entity python-telegram-bot needs), then read what the bot did from ``calls`` and the helpers
``replies``/``wait_for``. ``fail(method, times, status=429, retry_after=1)`` makes the next
calls of a method fail (429 carries ``retry_after``); ``outage = True`` answers every request
with 502, as an unreachable Telegram would look through a proxy. ``turned_away`` lists the
(method, status) of requests refused before any method ran (502 in an outage, 401 for a wrong
token), so tests can wait until the bot has tried.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

T = TypeVar("T")

BOT_ID = 7_000_000_001
BOT_USERNAME = "tradebot_test_bot"
MAX_POLL_WAIT = 1.0  # seconds a getUpdates call waits for an update before answering []


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)
    status: int = 200
    result: Any = None  # what the server answered (e.g. the sent message)

    @property
    def message_id(self) -> int | None:
        return self.result.get("message_id") if isinstance(self.result, dict) else None

    @property
    def chat_id(self) -> int | None:
        value = self.params.get("chat_id")
        return int(value) if value is not None else None

    @property
    def text(self) -> str:
        return str(self.params.get("text") or self.params.get("caption") or "")


@dataclass
class _Failure:
    times: int
    status: int
    retry_after: int | None
    description: str
    chat_id: int | None = None


class FakeTelegram:
    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[Call] = []
        self.commands: list[dict[str, str]] = []
        self.outage = False
        self.turned_away: list[tuple[str, int]] = []
        self.served_at: dict[int, float] = {}  # update_id -> when a getUpdates answer carried it
        self._updates: list[dict[str, Any]] = []
        self._next_update = 1
        self._next_message = 1000
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._failures: dict[str, _Failure] = {}
        self._cond = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-telegram", daemon=True)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeTelegram:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._cond.notify_all()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    # ------------------------------------------------------------------ feeding updates

    def command(
        self,
        chat_id: int,
        text: str,
        *,
        user_id: int | None = None,
        chat_type: str | None = None,
        date: float | None = None,
        name: str = "Ann",
    ) -> int:
        """Queue a message whose first word is a command (with its bot_command entity)."""
        first = text.split()[0]
        entities = (
            [{"type": "bot_command", "offset": 0, "length": len(first)}] if first.startswith("/") else []
        )
        return self.text(
            chat_id, text, user_id=user_id, chat_type=chat_type, date=date, name=name, entities=entities
        )

    def text(
        self,
        chat_id: int,
        text: str,
        *,
        user_id: int | None = None,
        chat_type: str | None = None,
        date: float | None = None,
        name: str = "Ann",
        entities: list[dict[str, Any]] | None = None,
    ) -> int:
        user_id = user_id if user_id is not None else chat_id
        with self._cond:
            message_id = self._next_message
            self._next_message += 1
            message = {
                "message_id": message_id,
                "date": int(time.time() if date is None else date),
                "chat": _chat(chat_id, chat_type),
                "from": {"id": user_id, "is_bot": False, "first_name": name, "username": name.lower()},
                "text": text,
            }
            if entities:
                message["entities"] = entities
            self._push({"message": message})
        return message_id

    def press(
        self,
        chat_id: int,
        message_id: int,
        data: str,
        *,
        user_id: int | None = None,
        chat_type: str | None = None,
        name: str = "Ann",
    ) -> int:
        """Queue a callback query: a press on an inline button of the bot's message."""
        user_id = user_id if user_id is not None else chat_id
        with self._cond:
            message = self._messages.get((chat_id, message_id)) or {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": _chat(chat_id, chat_type),
                "text": "",
            }
            update_id = self._next_update
            query = {
                "id": f"cb{update_id}",
                "from": {"id": user_id, "is_bot": False, "first_name": name},
                "chat_instance": str(chat_id),
                "data": data,
                "message": message,
            }
            return self._push({"callback_query": query})

    def _push(self, body: dict[str, Any]) -> int:
        update_id = self._next_update
        self._next_update += 1
        self._updates.append({"update_id": update_id, **body})
        self._cond.notify_all()
        return update_id

    def fail(
        self,
        method: str,
        times: int = 1,
        *,
        status: int = 429,
        retry_after: int | None = 1,
        description: str | None = None,
        chat_id: int | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` (into ``chat_id``, if given) fail with ``status``."""
        if description is None:
            description = (
                f"Too Many Requests: retry after {retry_after}" if status == 429 else f"Error {status}"
            )
        with self._cond:
            self._failures[method] = _Failure(
                times, status, retry_after if status == 429 else None, description, chat_id
            )

    # ------------------------------------------------------------------ reading what the bot did

    def calls_of(self, *methods: str, chat_id: int | None = None, ok_only: bool = True) -> list[Call]:
        with self._cond:
            calls = list(self.calls)
        return [
            c
            for c in calls
            if c.method in methods
            and (chat_id is None or c.chat_id == chat_id)
            and (not ok_only or c.status == 200)
        ]

    def _turn_away(self, method: str, status: int) -> None:
        with self._cond:
            self.turned_away.append((method, status))
            self._cond.notify_all()

    def turned_away_count(self, method: str, status: int) -> int:
        with self._cond:
            return self.turned_away.count((method, status))

    def replies(self, chat_id: int) -> list[str]:
        """Texts (and captions) the bot sent or edited into ``chat_id``, in order."""
        return [c.text for c in self.calls_of("sendMessage", "sendPhoto", "editMessageText", chat_id=chat_id)]

    def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0, what: str = "condition") -> T:
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.02)

    def wait_reply(
        self,
        chat_id: int,
        contains: str,
        timeout: float = 10.0,
        after: int = 0,
        methods: tuple[str, ...] = ("sendMessage", "sendPhoto", "editMessageText"),
    ) -> Call:
        """The first successful send/edit into ``chat_id`` (from call index ``after`` on) containing ``contains``."""

        def find() -> Call | None:
            with self._cond:
                calls = self.calls[after:]
            for c in calls:
                if c.status == 200 and c.method in methods and c.chat_id == chat_id and contains in c.text:
                    return c
            return None

        return self.wait_for(find, timeout, f"a reply in chat {chat_id} containing {contains!r}")

    def mark(self) -> int:
        """An index into ``calls``: pass it as ``after`` to look only at what comes next."""
        with self._cond:
            return len(self.calls)

    # ------------------------------------------------------------------ the API

    def _answer(self, method: str, params: dict[str, Any], files: dict[str, bytes]) -> tuple[int, Any]:
        with self._cond:
            failure = self._failures.get(method)
            if (
                failure is not None
                and failure.chat_id is not None
                and str(params.get("chat_id")) != str(failure.chat_id)
            ):
                failure = None
            if failure is not None:
                failure.times -= 1
                if failure.times <= 0:
                    del self._failures[method]
                body: dict[str, Any] = {
                    "ok": False,
                    "error_code": failure.status,
                    "description": failure.description,
                }
                if failure.retry_after is not None:
                    body["parameters"] = {"retry_after": failure.retry_after}
                self.calls.append(Call(method, params, files, status=failure.status))
                return failure.status, body
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"}
        call = Call(method, params, files)
        try:
            call.result = handler(params, files)
        except _ApiError as exc:
            call.status = exc.status
            raise
        finally:
            if method != "getUpdates":
                with self._cond:
                    self.calls.append(call)
        return 200, {"ok": True, "result": call.result}

    def _api_getMe(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": "TradeBot",
            "username": BOT_USERNAME,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def _api_deleteWebhook(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return True

    def _api_setWebhook(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return True

    def _api_getUpdates(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        wait = min(float(params.get("timeout") or 0), MAX_POLL_WAIT)
        deadline = time.monotonic() + wait
        with self._cond:
            # Telegram forgets updates below the offset: they were acknowledged.
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            while not self._updates and time.monotonic() < deadline:
                self._cond.wait(max(0.0, deadline - time.monotonic()))
            batch = self._updates[:limit]
            now = time.monotonic()
            for update in batch:
                self.served_at.setdefault(update["update_id"], now)
            self.calls.append(Call("getUpdates", params))
            return batch

    def _api_setMyCommands(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        self.commands = list(params.get("commands") or [])
        return True

    def _api_getMyCommands(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return self.commands

    def _api_deleteMyCommands(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        self.commands = []
        return True

    def _new_message(self, params: dict[str, Any], **content: Any) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        with self._cond:
            message_id = self._next_message
            self._next_message += 1
            message = {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": _chat(chat_id, None),
                "from": {"id": BOT_ID, "is_bot": True, "first_name": "TradeBot", "username": BOT_USERNAME},
                **content,
            }
            if params.get("reply_markup"):
                message["reply_markup"] = params["reply_markup"]
            self._messages[(chat_id, message_id)] = message
            return message

    def _api_sendMessage(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return self._new_message(params, text=params["text"])

    def _api_sendPhoto(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        photo = [{"file_id": "photo1", "file_unique_id": "u1", "width": 800, "height": 450}]
        content: dict[str, Any] = {"photo": photo}
        if params.get("caption"):
            content["caption"] = params["caption"]
        return self._new_message(params, **content)

    def _api_answerCallbackQuery(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return True

    def _edit(self, params: dict[str, Any], **changes: Any) -> Any:
        key = (int(params["chat_id"]), int(params["message_id"]))
        with self._cond:
            message = self._messages.get(key)
            if message is None:
                raise _ApiError(400, "Bad Request: message to edit not found")
            if all(message.get(k) == v for k, v in changes.items()):
                raise _ApiError(
                    400,
                    "Bad Request: message is not modified: specified new message content and reply "
                    "markup are exactly the same as a current content and reply markup of the message",
                )
            message.update(changes)
            if "reply_markup" not in changes:
                message.pop("reply_markup", None)
            return dict(message, edit_date=int(time.time()))

    def _api_editMessageText(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        changes: dict[str, Any] = {"text": params["text"]}
        if params.get("reply_markup"):
            changes["reply_markup"] = params["reply_markup"]
        return self._edit(params, **changes)

    def _api_editMessageReplyMarkup(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return self._edit(params, reply_markup=params.get("reply_markup") or None)

    # ------------------------------------------------------------------ HTTP plumbing

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm and
            # the client's delayed ACK would add ~40 ms to every answer (as no real server does).
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                self._serve(b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self._serve(self.rfile.read(length) if length else b"")

            def _serve(self, body: bytes) -> None:
                url = urlsplit(self.path)
                prefix, _, method = url.path.rpartition("/")
                if fake.outage:
                    fake._turn_away(method, 502)
                    self._send(502, {"ok": False, "error_code": 502, "description": "Bad Gateway"})
                    return
                if prefix != f"/bot{fake.token}":
                    fake._turn_away(method, 401)
                    self._send(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
                    return
                params, files = _parse(self.headers.get("Content-Type", ""), body)
                params.update(dict(parse_qsl(url.query)))
                try:
                    status, answer = fake._answer(method, params, files)
                except _ApiError as exc:
                    status, answer = (
                        exc.status,
                        {
                            "ok": False,
                            "error_code": exc.status,
                            "description": exc.description,
                        },
                    )
                self._send(status, answer)

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (shutdown)
                    self.close_connection = True

        return Handler


class _ApiError(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


def _chat(chat_id: int, chat_type: str | None) -> dict[str, Any]:
    kind = chat_type or ("private" if chat_id > 0 else "supergroup")
    chat: dict[str, Any] = {"id": chat_id, "type": kind}
    if kind == "private":
        chat["first_name"] = "Ann"
    else:
        chat["title"] = f"group {chat_id}"
    return chat


_RAW = frozenset({"text", "caption", "parse_mode", "callback_query_id", "url", "secret_token"})


def _decode(key: str, value: str) -> Any:
    """python-telegram-bot sends every non-string parameter JSON-encoded inside the form."""
    if key in _RAW:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _parse(content_type: str, body: bytes) -> tuple[dict[str, Any], dict[str, bytes]]:
    params: dict[str, Any] = {}
    files: dict[str, bytes] = {}
    if not body:
        return params, files
    if content_type.startswith("multipart/form-data"):
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
        )
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            if part.get_filename() is not None or part.get_content_type() == "application/octet-stream":
                files[str(name)] = payload
            else:
                params[str(name)] = _decode(str(name), payload.decode())
    elif content_type.startswith("application/json"):
        params = json.loads(body)
    else:
        params = {k: _decode(k, v) for k, v in parse_qsl(body.decode(), keep_blank_values=True)}
    return params, files


class BotThread:
    """The Telegram front end of a built ``App`` on its own event loop in a background thread.

    Tests stay synchronous: they queue updates on the fake server and wait for what it records.
    """

    def __init__(self, app: Any, **front_end_options: Any) -> None:
        self.app = app
        from bot.telegram.sending import RateLimiter

        # Telegram's per-chat pacing (1 s, 3 s in groups) shortened so tests run quickly.
        fast = RateLimiter(private_interval=0.2, group_interval=0.2)
        self.options = {"poll_timeout": 1.0, "alert_poll_seconds": 0.5, "limiter": fast, **front_end_options}
        self.front: Any = None
        self._loop: Any = None
        self._stop: Any = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self.error: BaseException | None = None

    def start(self, wait_connected: bool = True, timeout: float = 15.0) -> BotThread:
        import asyncio

        from bot.telegram.transport import TelegramConfig, TelegramFrontEnd

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self.front = TelegramFrontEnd(
                self.app, TelegramConfig.from_settings(self.app.settings), **self.options
            )
            self._started.set()
            await self.front.run(self._stop)

        def target() -> None:
            try:
                asyncio.run(main())
            except BaseException as exc:  # surfaced by stop()
                self.error = exc
                self._started.set()

        self._thread = threading.Thread(target=target, name="telegram-front-end", daemon=True)
        self._thread.start()
        self._started.wait(timeout)
        if wait_connected:
            deadline = time.monotonic() + timeout
            while not (self.front is not None and self.front.connected.is_set()):
                if self.error is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the front end did not connect: {self.error!r}")
                time.sleep(0.02)
        return self

    def stop(self, timeout: float = 20.0) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise AssertionError("the front end did not stop")
        if self.error is not None:
            raise self.error

    def __enter__(self) -> BotThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
