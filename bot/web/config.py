"""Where the web server listens, who may use it, and whose X-Forwarded-For to believe, from the
TRADEBOT_WEB_* variables and PORT.

Refuse by default: with no password and no token the server binds to loopback only and lets in
whoever opens the one-time login link printed at start (as Jupyter does). Any other address
without credentials, or with a password shorter than ``MIN_PUBLIC_PASSWORD`` characters, is
refused before anything binds, in one line. ``tradebot run`` and ``tradebot doctor`` both ask
``WebConfig.from_settings``, so they agree.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from bot.config import Settings
from bot.config.loading import where
from bot.config.types import Source

DEFAULT_PORT = 8000
LOOPBACK_NAMES = {"localhost"}
# A password that anyone on the internet may try: at 30 guesses a minute (the login limits),
# 12 characters is out of reach even for lower-case letters alone (26^12 = 9.5e16 guesses).
MIN_PUBLIC_PASSWORD = 12

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class WebConfigError(ValueError):
    """The web settings cannot be used as given; the message says which variable to change."""


@dataclass(frozen=True)
class Proxies:
    """Whose ``X-Forwarded-For`` names the client (the login limits count failures per client).

    * ``platform``: every peer is the platform's router ($PORT set, TRADEBOT_WEB_PROXY=auto). Heroku
      documents that its router appends the address it saw to X-Forwarded-For (Dev Center, "HTTP
      Routing", Heroku headers), so the last entry is the client, whatever the client wrote before it.
    * ``networks``: only connections from these addresses (a proxy of your own) are believed; the
      client is the last entry that is not one of them.
    * neither: the header is ignored; the client is the connection's own address.

    Several X-Forwarded-For headers in one request are ambiguous: Heroku's legacy router appended to
    the first of them, not the last (heroku/roadmap#238; fixed in Router 2.0), so a client could choose
    which entry looks last. Such requests all share one client key.
    """

    platform: bool = False
    networks: tuple[Network, ...] = ()

    @classmethod
    def none(cls) -> Proxies:
        return cls()

    def trusts(self, peer: str) -> bool:
        if self.platform:
            return True
        address = _address(peer)
        return address is not None and any(address in net for net in self.networks)

    def client(self, peer: str, forwarded: list[str]) -> str:
        """The key the login limits count under: an IPv4 address, an IPv6 /64, or a fixed word."""
        if not forwarded or not self.trusts(peer):
            return client_key_of(peer)
        if len(forwarded) > 1:
            return "several X-Forwarded-For headers"
        entries = [entry.strip() for entry in forwarded[0].split(",")]
        for entry in reversed(entries):
            address = _address(entry)
            if address is None:
                return "unreadable X-Forwarded-For"
            if self.platform or not any(address in net for net in self.networks):
                return client_key_of(entry)
        return client_key_of(peer)


@dataclass(frozen=True)
class WebConfig:
    host: str
    port: int  # 0: any free port (tests)
    user: str
    password: str
    token: str
    explicit: bool = True  # the port was asked for (PORT or TRADEBOT_WEB_PORT), not the default 8000
    proxies: Proxies = Proxies()

    def __repr__(self) -> str:  # never show the password or the token
        return f"WebConfig(host={self.host!r}, port={self.port}, user={self.user!r}, credentials={self.has_credentials})"

    @property
    def has_credentials(self) -> bool:
        return bool(self.password or self.token)

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @classmethod
    def from_settings(cls, settings: Settings) -> WebConfig | None:
        """None when TRADEBOT_WEB_PORT=off. Raises WebConfigError for an unsafe or unusable set-up."""
        choice = settings.tradebot_web_port
        if choice == "off":
            return None
        platform_port = settings.port if settings.is_set("PORT") else None
        port = (platform_port or DEFAULT_PORT) if choice == "auto" else int(choice)
        host = settings.tradebot_web_host
        if host == "auto":
            host = "0.0.0.0" if platform_port else "127.0.0.1"
        config = cls(
            host=host,
            port=port,
            user=settings.tradebot_web_user,
            password=settings.tradebot_web_password.get_secret_value(),
            token=settings.tradebot_web_token.get_secret_value().strip(),
            explicit=not (choice == "auto" and not platform_port),
            proxies=_proxies(
                settings.tradebot_web_proxy, platform=bool(platform_port) and port == platform_port
            ),
        )
        if not config.loopback and not config.has_credentials:
            raise WebConfigError(
                f"the dashboard would listen on {host}:{port} with no password, because "
                f"{_why_host(settings, platform_port)}: set TRADEBOT_WEB_PASSWORD (or TRADEBOT_WEB_TOKEN), "
                f"or TRADEBOT_WEB_HOST=127.0.0.1, or TRADEBOT_WEB_PORT=off{_unset_port_hint(settings)}"
            )
        strength = len(config.password.strip())
        if not config.loopback and config.password and strength < MIN_PUBLIC_PASSWORD:
            raise WebConfigError(
                f"TRADEBOT_WEB_PASSWORD has {strength} characters and the dashboard would listen on "
                f"{host}:{port}, open to anyone who can reach it: allowed at least {MIN_PUBLIC_PASSWORD} "
                "(spaces at either end not counted), e.g. python3 -c 'import secrets; "
                f"print(secrets.token_urlsafe(18))'; TRADEBOT_WEB_PASSWORD is {where(settings.source('TRADEBOT_WEB_PASSWORD'))}"
            )
        return config


def _why_host(settings: Settings, platform_port: int | None) -> str:
    """Which variables chose the address, and where each value came from."""
    if settings.tradebot_web_host != "auto" or not platform_port:
        return settings.origin("TRADEBOT_WEB_HOST")
    return (
        f"{settings.origin('PORT')} with {settings.origin('TRADEBOT_WEB_HOST')} means every address "
        "(a platform's web process)"
    )


def _unset_port_hint(settings: Settings) -> str:
    """PORT in ``.env`` is a copied example's, not a platform's (platforms set the environment)."""
    if settings.tradebot_web_host == "auto" and settings.source("PORT") is Source.DOTENV:
        return ", or remove PORT from .env (only a platform sets it)"
    return ""


def _proxies(value: str, *, platform: bool) -> Proxies:
    if value == "none":
        return Proxies.none()
    if value == "auto":
        return Proxies(platform=platform)
    return Proxies(networks=tuple(ipaddress.ip_network(item) for item in value.split(",")))


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def client_key_of(text: str) -> str:
    """An address as the login limits count it: IPv4 as is, IPv6 by its /64 (one home or one
    server gets a whole /64, so counting single IPv6 addresses would let one client rotate)."""
    address = _address(text)
    if address is None:
        return text
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None
