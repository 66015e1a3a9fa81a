"""Where the web server listens and who may use it, from the TRADEBOT_WEB_* variables and PORT.

Refuse by default: with no password and no token the server binds to loopback only and lets in
whoever opens the one-time login link printed at start (as Jupyter does). Any other address
without credentials is refused before anything binds, in one line.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from bot.config import Settings
from bot.config.types import Source

DEFAULT_PORT = 8000
LOOPBACK_NAMES = {"localhost"}


class WebConfigError(ValueError):
    """The web settings cannot be used as given; the message says which variable to change."""


@dataclass(frozen=True)
class WebConfig:
    host: str
    port: int  # 0: any free port (tests)
    user: str
    password: str
    token: str
    explicit: bool = True  # the port was asked for (PORT or TRADEBOT_WEB_PORT), not the default 8000

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
        )
        if not config.loopback and not config.has_credentials:
            raise WebConfigError(
                f"the dashboard would listen on {host}:{port} with no password, because "
                f"{_why_host(settings, platform_port)}: set TRADEBOT_WEB_PASSWORD (or TRADEBOT_WEB_TOKEN), "
                f"or TRADEBOT_WEB_HOST=127.0.0.1, or TRADEBOT_WEB_PORT=off{_unset_port_hint(settings)}"
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


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere
