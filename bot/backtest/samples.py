"""Sample datasets shipped with tradebot (``bot/samples/``, package data): ``--sample NAME``.

Each is a CSV file read exactly like ``--csv``; ``bot/samples/README.md`` names the source and
the licence of each.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    file: str
    symbol: str
    about: str


SAMPLES = {
    "msft-daily": Sample(
        "msft_daily.csv", "MSFT", "Microsoft daily bars 1986-03-13 to 2017-11-10, adjusted (public domain)"
    ),
}


class SampleError(ValueError):
    """No such sample, or the installation lacks its file; the message is one line."""


def sample_path(name: str) -> Path:
    """The sample's CSV file in this installation."""
    sample = SAMPLES.get(name)
    if sample is None:
        raise SampleError(f"--sample {name!r}: no such sample (there are: {', '.join(SAMPLES)})")
    path = Path(str(resources.files("bot").joinpath("samples", sample.file)))
    if not path.is_file():
        raise SampleError(f"--sample {name}: {path} is missing from this installation; reinstall tradebot")
    return path


def described() -> str:
    return "; ".join(f"{name}: {sample.about}" for name, sample in SAMPLES.items())
