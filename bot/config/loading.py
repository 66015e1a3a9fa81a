"""Reading ``Settings`` from the environment and ``.env``, and saying what is wrong in one line.

The environment wins over ``.env``; each value remembers where it came from. A value tradebot
cannot use raises ``ConfigError`` with one line per variable: its name, its value (a secret is
masked, a database password too) and what is allowed.
"""

from __future__ import annotations

import difflib
import enum
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from bot.config.model import MAX_CACHED_BARS, Settings, secret_fields
from bot.config.types import Source, SummaryTime, mask_url, summary_text
from bot.risk import BOUNDS

# Prefixes of tradebot's own variables: an unknown name with one of them is probably a typo.
OWN_PREFIXES = ("TRADEBOT_", "ALPACA_", "TELEGRAM_", "POLYGON_")


class ConfigError(ValueError):
    """Variables have values tradebot cannot use; ``lines`` has one sentence per variable."""

    def __init__(self, lines: str | list[str]) -> None:
        self.lines = [lines] if isinstance(lines, str) else list(lines)
        super().__init__("\n".join(self.lines))


@dataclass(frozen=True, slots=True)
class Variable:
    """One row of the variable table, for ``.env.example``, ``app.json`` and the tests."""

    name: str
    default: str
    help: str
    group: str
    secret: bool
    in_example: bool = True  # False: .env.example shows it commented out (``var(example=False)``)


def all_variables() -> tuple[Variable, ...]:
    rows = []
    for field_name, info in Settings.model_fields.items():
        extra: dict[str, Any] = info.json_schema_extra or {}  # type: ignore[assignment]
        rows.append(
            Variable(
                name=field_name.upper(),
                default=str(info.default),
                help=str(info.description),
                group=str(extra.get("group", "General")),
                secret=info.annotation is SecretStr,
                in_example=bool(extra.get("example", True)),
            )
        )
    return tuple(rows)


def read_env_file(env_file: str | Path | None) -> dict[str, str]:
    if env_file is None or not Path(env_file).is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(env_file).items() if v is not None}


def load(environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env") -> Settings:
    dotenv = read_env_file(env_file)
    env = os.environ if environ is None else environ
    raw: dict[str, str] = {}
    sources: dict[str, Source] = {}
    for var in all_variables():
        if var.name in env:
            raw[var.name], sources[var.name] = env[var.name], Source.ENVIRONMENT
        elif var.name in dotenv:
            raw[var.name], sources[var.name] = dotenv[var.name], Source.DOTENV
    return _build(raw, sources)


def from_mapping(source: Mapping[str, str]) -> Settings:
    names = {var.name for var in all_variables()}
    raw = {name: str(value) for name, value in source.items() if name in names and value is not None}
    return _build(raw, dict.fromkeys(raw, Source.ENVIRONMENT))


def _build(raw: dict[str, str], sources: dict[str, Source]) -> Settings:
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_lines(exc, raw, sources)) from None
    settings._sources = sources
    problems = cross_checks(settings)
    if problems:
        raise ConfigError(problems)
    return settings


def cross_checks(settings: Settings) -> list[str]:
    """Rules that span variables."""
    problems = []
    cached = settings.tradebot_history_bars * len(settings.tradebot_symbols)
    if cached > MAX_CACHED_BARS:
        problems.append(
            f"TRADEBOT_HISTORY_BARS={settings.tradebot_history_bars} for {len(settings.tradebot_symbols)} "
            f"symbols holds {cached:,} bars in memory: allowed at most {MAX_CACHED_BARS:,} "
            f"(about 120 MB); lower TRADEBOT_HISTORY_BARS ({where(settings.source('TRADEBOT_HISTORY_BARS'))}) "
            f"or TRADEBOT_SYMBOLS ({where(settings.source('TRADEBOT_SYMBOLS'))})"
        )
    return problems


# ---------------------------------------------------------------------- messages


def _lines(exc: ValidationError, raw: Mapping[str, str], sources: Mapping[str, Source]) -> list[str]:
    lines: list[str] = []
    seen: set[str] = set()
    for error in exc.errors(include_url=False):
        name = str(error["loc"][0]) if error["loc"] else ""
        if name in seen:
            continue
        seen.add(name)
        value = raw.get(name, _default_of(name))
        reason = ""
        if error["type"] == "value_error":
            reason = str(error.get("ctx", {}).get("error", ""))
        lines.append(
            f"{name}={shown_value(name, value)} is invalid: {reason or allowed(name)}"
            + came_from(sources.get(name, Source.DEFAULT))
        )
    return lines


def where(source: Source) -> str:
    """Where a value was set, in words: ``set in .env``, ``set in the environment``, ``the default``."""
    return {
        Source.DOTENV: "set in .env",
        Source.ENVIRONMENT: "set in the environment",
        Source.DEFAULT: "the default",
    }[source]


def came_from(source: Source) -> str:
    """Where a refused value was set, as the end of its message: ``; set in .env``."""
    return "; that is its default" if source is Source.DEFAULT else f"; {where(source)}"


def _default_of(name: str) -> str:
    info = Settings.model_fields.get(name.lower())
    return str(info.default) if info else ""


def shown_value(name: str, value: str, limit: int = 60) -> str:
    """The value as an error line quotes it: masked when secret, shortened when long."""
    if name.lower() in secret_fields():
        return "'***'" if value else "''"
    text = mask_url(value) if name == "DATABASE_URL" else value
    if len(text) > limit:
        return repr(text[:limit]) + f" (+{len(text) - limit} characters)"
    return repr(text)


def allowed(name: str) -> str:
    """What a variable accepts, in words, from its type and bounds."""
    info = Settings.model_fields[name.lower()]
    extra: dict[str, Any] = info.json_schema_extra or {}  # type: ignore[assignment]
    if extra.get("allowed"):
        return f"allowed {extra['allowed']}"
    kind = info.annotation
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return "allowed one of " + ", ".join(str(member.value) for member in kind)
    if kind is bool:
        return "allowed true or false"
    low = high = None
    if name.lower() in BOUNDS:
        low, high = BOUNDS[name.lower()]
    for item in info.metadata:
        low = getattr(item, "ge", low)
        high = getattr(item, "le", high)
    unit = f" {extra['unit']}" if extra.get("unit") else ""
    number = "a whole number" if kind is int else "a number"
    if low is not None and high is not None:
        note = " (the bounds /risk set allows)" if name.lower() in BOUNDS else ""
        return f"allowed {number} from {low:g} to {high:g}{unit}{note}"
    return f"allowed {number}{unit}"


# ---------------------------------------------------------------------- showing it


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    shown: str
    source: Source
    help: str


def shown(value: Any, name: str = "") -> str:
    """A typed value written back as it would be in ``.env``; secrets as (set) or (not set)."""
    if isinstance(value, SecretStr):
        return "(set)" if value.get_secret_value() else "(not set)"
    if name == "DATABASE_URL":
        return mask_url(str(value))
    if isinstance(value, tuple | list):
        return ",".join(map(str, value)) if name != "TRADEBOT_STRATEGIES" else ";".join(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if name == "DAILY_SUMMARY_TIME" or isinstance(value, SummaryTime):
        return summary_text(value)
    return str(value)


def describe(settings: Settings) -> Iterator[Row]:
    """Every variable: its effective value (secrets masked), where it came from, its help."""
    for var in all_variables():
        value = getattr(settings, var.name.lower())
        yield Row(var.name, shown(value, var.name), settings.source(var.name), var.help)


def unknown_names(
    environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env"
) -> list[str]:
    """Sentences about names that look like tradebot variables but are not (typos): any name in
    ``.env``, and names in the environment with tradebot's prefixes."""
    known = [var.name for var in all_variables()]
    env = os.environ if environ is None else environ
    found = [(n, ".env") for n in read_env_file(env_file) if n not in known]
    found += [(n, "the environment") for n in env if n.startswith(OWN_PREFIXES) and n not in known]
    out = []
    for name, where in found:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        out.append(f"{name} in {where} is not a tradebot variable{hint}: it is ignored")
    return out


def env_example() -> str:
    """The text of ``.env.example``: every variable, its default, a one-line comment, by group."""
    lines = [
        "# tradebot configuration. Copy to .env and edit; real environment variables win over this file.",
        "# With nothing set, tradebot trades a simulated market and stores its state in tradebot.db.",
        "# Copied as it is, it runs as if there were no .env; the lines left commented out change what",
        "# tradebot does when set (even to the value shown), so set them only when you mean to.",
    ]
    group = None
    for var in all_variables():
        if var.group != group:
            group = var.group
            lines += ["", f"# --- {group} ---"]
        line = f"{var.name}={'' if var.secret else var.default}"
        lines += [f"# {var.help}", line if var.in_example else f"# {line}"]
    return "\n".join(lines) + "\n"
