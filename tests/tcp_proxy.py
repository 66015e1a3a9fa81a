"""A TCP proxy on 127.0.0.1 that can be told to stop forwarding: a dead network, not a dead server.

``blackhole()`` is what a network that stops forwarding on established connections looks like to
the bot: every socket stays open, nothing is refused or reset, bytes sent are taken and go nowhere,
no answer ever comes; new connections are accepted and hear nothing either. Postgres never learns
of it, so its own ``statement_timeout`` never fires. ``forward()`` lets bytes through again (new
connections work; a connection that lost bytes while blackholed is out of step, as it would be if
the client had not already given up on it).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from types import TracebackType


class BlackholeProxy:
    """``127.0.0.1:port`` forwarding to ``target``, in one thread, until ``close()``."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._peers: dict[socket.socket, socket.socket] = {}
        self._forwarding = threading.Event()
        self._forwarding.set()
        self._stop = threading.Event()
        self.dropped = 0  # bytes taken and thrown away while blackholed
        self._thread = threading.Thread(target=self._serve, name="blackhole-proxy", daemon=True)
        self._thread.start()

    def blackhole(self) -> None:
        self._forwarding.clear()

    def forward(self) -> None:
        self._forwarding.set()

    def open_connections(self) -> int:
        return len(self._peers) // 2

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for sock in list(self._peers):
            sock.close()
        self._selector.close()
        self._listener.close()

    def __enter__(self) -> BlackholeProxy:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.1):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._listener:
                    self._accept()
                elif sock in self._peers:
                    self._pump(sock)

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        for sock in (client, upstream):
            sock.setblocking(True)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._selector.register(sock, selectors.EVENT_READ)
        self._peers[client] = upstream
        self._peers[upstream] = client

    def _pump(self, sock: socket.socket) -> None:
        peer = self._peers[sock]
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if not data:  # one side closed: close the pair, as a forwarding network would pass the FIN
            for end in (sock, peer):
                self._selector.unregister(end)
                self._peers.pop(end, None)
                end.close()
            return
        if not self._forwarding.is_set():
            self.dropped += len(data)
            return
        with contextlib.suppress(OSError):  # the other side is gone: its own read will say so
            peer.sendall(data)
