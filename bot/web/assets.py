"""The browser-side files: ours in ``bot/web/static``, two libraries from Python packages.

No CDN and no Node.js build: TradingView's Lightweight Charts (Apache-2.0, 160 KB) comes inside
the ``lightweight-charts`` package on PyPI, Swagger UI inside ``fastapi-offline``. Their files
are located without importing those packages (their Python halves are never used).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from functools import cache
from pathlib import Path

STATIC = Path(__file__).with_name("static")


class MissingAsset(RuntimeError):
    """A package that ships a browser file is not installed; the message names it."""


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingAsset(f"the Python package {package!r} is not installed (pip install -e . installs it)")
    return Path(next(iter(spec.submodule_search_locations)))


@cache
def lightweight_charts_js() -> Path:
    path = _package_dir("lightweight_charts") / "js" / "lightweight-charts.js"
    if not path.is_file():
        raise MissingAsset(f"{path} is missing: reinstall the lightweight-charts package")
    return path


@cache
def swagger_dir() -> Path:
    path = _package_dir("fastapi_offline") / "static"
    if not (path / "swagger-ui-bundle.js").is_file():
        raise MissingAsset(f"{path}/swagger-ui-bundle.js is missing: reinstall the fastapi-offline package")
    return path


VENDOR: dict[str, Callable[[], Path]] = {
    "lightweight-charts.js": lightweight_charts_js,
    "swagger-ui-bundle.js": lambda: swagger_dir() / "swagger-ui-bundle.js",
    "swagger-ui.css": lambda: swagger_dir() / "swagger-ui.css",
}
