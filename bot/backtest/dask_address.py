"""The address of a Dask scheduler (``--cluster``, ``TRADEBOT_DASK_SCHEDULER``), checked as text.

A scheduler listens on ``tcp://HOST:PORT`` (8786 by default). Anything else is refused before a
connection is tried: ``http://...`` (the scheduler's dashboard, not the scheduler), a word with
no port (``garbage``, ``nan``), a port out of range, a path. Dask itself would refuse some of
these only after building a client, whose finaliser then printed a traceback 20 s later
(issue 19). Standard library only: ``bot.backtest.config`` reads the variable without pydantic,
``bot.config.types`` with it, both through ``scheduler_address``.
"""

from __future__ import annotations

import ipaddress
import re

DASK_ADDRESS_FORMAT = (
    "empty (local processes) or a Dask scheduler's address tcp://HOST:PORT or HOST:PORT (tcp://10.0.0.5:8786)"
)
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
_HOST_PORT = re.compile(r"^(\[[^\]]*\]|[^:/\[\]]+):([0-9]{1,5})$")


def scheduler_address(text: object) -> str:
    """``tcp://HOST:PORT`` for a valid address (``HOST:PORT`` gets the scheme), ``""`` for empty;
    ``ValueError`` with what is allowed otherwise."""
    value = str(text).strip()
    if not value:
        return ""
    rest = value
    if "://" in value:
        scheme, rest = value.split("://", 1)
        if scheme.lower() != "tcp":
            hint = (
                ": http:// is the scheduler's dashboard (port 8787); the scheduler itself listens on tcp://, "
                "port 8786 by default"
                if scheme.lower() in ("http", "https")
                else ""
            )
            raise ValueError(f"allowed {DASK_ADDRESS_FORMAT}{hint}")
    match = _HOST_PORT.match(rest)
    if not match or not value.isascii() or not value.isprintable():
        raise ValueError(f"allowed {DASK_ADDRESS_FORMAT}")
    host, port = match.group(1), int(match.group(2))
    if not 1 <= port <= 65_535:
        raise ValueError(f"allowed {DASK_ADDRESS_FORMAT}; the port is a number from 1 to 65535")
    if host.startswith("["):
        try:
            host = f"[{ipaddress.IPv6Address(host[1:-1])}]"
        except ValueError:
            raise ValueError(f"allowed {DASK_ADDRESS_FORMAT}") from None
    elif _numeric(host):
        try:
            host = str(ipaddress.IPv4Address(host))
        except ValueError:
            raise ValueError(f"allowed {DASK_ADDRESS_FORMAT}") from None
    elif not _HOST_NAME.match(host):
        raise ValueError(f"allowed {DASK_ADDRESS_FORMAT}")
    return f"tcp://{host}:{port}"


def _numeric(host: str) -> bool:
    """Digits and dots only: an IPv4 address or nothing (``999.1.1.1`` is no host name)."""
    return all(part.isdigit() for part in host.split("."))
