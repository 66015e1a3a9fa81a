"""Settings from the environment and ``.env`` (12-factor), validated once, typed, passed around.

- ``model.py``: ``Settings``, the one definition of every variable (type, bounds or choices,
  default, help, group). ``tradebot config``, ``.env.example`` and ``tradebot doctor`` all come
  from it.
- ``types.py``: the value types (fixed choices, symbols, strategy specs, URLs, the summary time)
  and their parsers.
- ``loading.py``: environment over ``.env``, where each value came from, and the one-line
  messages for values tradebot cannot use (``ConfigError``).

Secrets are pydantic ``SecretStr``: unwrap them with ``.get_secret_value()`` where they are used,
nowhere else. The database URL is a plain string; show it only through ``mask_url``.

Adding a variable is a one-place change:

1. add a field to ``Settings`` in ``model.py``, in the group it belongs to::

       tradebot_web_port: Annotated[int, Field(ge=1, le=65_535)] = var(
           "8080", "Port of the web dashboard", group="Web"
       )

   The attribute is the variable's name in lower case; the default is written as in ``.env``;
   the type and its bounds (``Field(ge=..., le=...)``, a ``Choice`` enum, ``SecretStr``, or a
   parser from ``types.py``) are what the loader enforces and what its error line says is allowed;
2. regenerate the example: ``tradebot config --example > .env.example`` (a test compares them),
   and add the variable to ``app.json`` if Heroku users should see it.
"""

from bot.config.loading import (
    ConfigError,
    Row,
    Variable,
    all_variables,
    allowed,
    describe,
    env_example,
    unknown_names,
)
from bot.config.model import Settings
from bot.config.types import (
    ConsoleMode,
    DataFeed,
    LogFormat,
    LogLevel,
    Source,
    database_url,
    mask_url,
)

__all__ = [
    "ConfigError",
    "ConsoleMode",
    "DataFeed",
    "LogFormat",
    "LogLevel",
    "Row",
    "Settings",
    "Source",
    "Variable",
    "all_variables",
    "allowed",
    "database_url",
    "describe",
    "env_example",
    "mask_url",
    "unknown_names",
]
