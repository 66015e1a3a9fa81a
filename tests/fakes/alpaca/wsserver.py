"""A websockets server on 127.0.0.1, on an event loop in a thread of its own: the fake streams' base."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from websockets.asyncio.server import ServerConnection, serve


class WebsocketServer:
    """Serves ``handler`` on a free port (``port``) until ``stop``, which closes ``clients()``."""

    def __init__(
        self,
        handler: Callable[[ServerConnection], Awaitable[None]],
        clients: Callable[[], Iterable[ServerConnection]],
        name: str,
    ) -> None:
        self._handler = handler
        self._clients = clients
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            self._stopping = asyncio.Event()
            async with serve(self._handler, "127.0.0.1", 0) as server:
                self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
                self._ready.set()
                await self._stopping.wait()
                for ws in list(self._clients()):
                    await ws.close()

        self.loop.run_until_complete(main())
        self.loop.close()

    def send(self, ws: ServerConnection, frame: Any) -> None:
        """Send ``frame`` to ``ws`` from any thread."""
        asyncio.run_coroutine_threadsafe(ws.send(frame), self.loop)

    def stop(self) -> None:
        if self._stopping is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(10)
