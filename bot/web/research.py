"""``/api/v1/research``: backtests, sweeps and walk-forward runs from the dashboard.

A job is one ``tradebot backtest`` run in a worker process of lower priority with a memory cap
(``bot/research/``), one at a time; its progress reaches the page over the WebSocket
(``{"type": "research"}``). Starting one is an action: it needs the CSRF token with a session
cookie, and a standby instance answers 409. It asks for no confirmation: it moves no money and
changes no limit, and a DELETE stops it.

The HTML report is served behind the login with a Content-Security-Policy of its own: its inline
scripts, named by their hashes, run in a sandbox with no access to this site (no cookies, no
API) and no network at all, as when it is opened from disk.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel

from bot.research.jobs import REPORT_HTML, JobRefused, JobRequest
from bot.research.supervisor import JOB_ID, JobState, NoSuchJob, Research, ResearchOff
from bot.web.auth import Principal
from bot.web.security import context, require_csrf, require_user

router = APIRouter(prefix="/api/v1/research", dependencies=[Depends(require_csrf)], tags=["research"])
User = Annotated[Principal, Depends(require_user)]

FILE_NAME = re.compile(r"^[a-z]+\.(json|html|csv|txt)$")
MEDIA = {
    "json": "application/json",
    "html": "text/html; charset=utf-8",
    "csv": "text/csv",
    "txt": "text/plain; charset=utf-8",
}
TIMEFRAMES = ["1m", "5m", "15m", "30m", "1h", "4h", "1d"]


class ParamSpec(BaseModel):
    name: str
    default: float
    minimum: float | None
    maximum: float | None
    integer: bool
    help: str


class StrategySpec(BaseModel):
    name: str
    description: str
    params: list[ParamSpec]


class SampleOut(BaseModel):
    name: str
    symbol: str
    about: str


class StoredOut(BaseModel):
    symbol: str
    timeframe: str
    bars: int
    first: str | None
    last: str | None
    source: str


class CsvFileOut(BaseModel):
    path: str
    size: int


class ResearchJobOut(BaseModel):
    id: str
    title: str
    kind: Literal["backtest", "sweep", "walk_forward", "portfolio"]
    by: str
    created: str
    state: Literal["running", "done", "failed", "canceled"]
    stage: str
    done: int
    total: int
    started: str | None
    finished: str | None
    error: str | None
    files: list[str]
    request: dict[str, Any]

    @classmethod
    def of(cls, state: JobState) -> ResearchJobOut:
        return cls(**state.as_dict())


class ResearchResultOut(BaseModel):
    job: ResearchJobOut
    figures: dict[str, Any] | None = None


class ResearchOptionsOut(BaseModel):
    available: bool
    why_not: str | None
    strategies: list[StrategySpec]
    samples: list[SampleOut]
    store: list[StoredOut]
    store_dir: str
    csv_files: list[CsvFileOut]
    csv_dir: str | None
    rank_by: list[str]
    timeframes: list[str]
    memory_mb: int
    workers: int
    running: ResearchJobOut | None


def research(request: Request) -> Research:
    found = context(request).research
    if found is None:
        raise HTTPException(503, "research is starting")
    return found


def _why_not(request: Request, lab: Research) -> str | None:
    ctx = context(request)
    if not lab.settings.enabled:
        return "research from the dashboard is off on this instance (TRADEBOT_RESEARCH=false)"
    if ctx.dashboard.read_only():
        return f"this instance is read-only ({ctx.app.lease.describe()}): research runs on the trading one"
    return None


@router.get(
    "", response_model=ResearchOptionsOut, summary="What a research job can use: strategies, data, limits"
)
def options(request: Request, user: User) -> ResearchOptionsOut:
    from bot.backtest.report import RANKABLE
    from bot.backtest.samples import SAMPLES
    from bot.research.sources import csv_files, stored_series

    lab = research(request)
    places = lab.settings.places
    why = _why_not(request, lab)
    running = lab.running()
    return ResearchOptionsOut(
        available=why is None,
        why_not=why,
        strategies=[
            StrategySpec(
                name=name,
                description=cls.description,
                params=[
                    ParamSpec(
                        name=key,
                        default=p.default,
                        minimum=p.min,
                        maximum=p.max,
                        integer=p.kind is int,
                        help=p.help,
                    )
                    for key, p in cls.params.items()
                ],
            )
            for name, cls in sorted(context(request).app.registry.strategies.items())
        ],
        samples=[SampleOut(name=name, symbol=s.symbol, about=s.about) for name, s in SAMPLES.items()],
        store=[StoredOut(**asdict(s)) for s in stored_series(places.data_dir)],
        store_dir=str(places.data_dir.resolve()),
        csv_files=[CsvFileOut(path=f.path, size=f.size) for f in csv_files(places.csv_dir)],
        csv_dir=str(places.csv_dir.resolve()) if places.csv_dir else None,
        rank_by=list(RANKABLE),
        timeframes=TIMEFRAMES,
        memory_mb=lab.settings.memory_mb,
        workers=places.workers,
        running=ResearchJobOut.of(running) if running else None,
    )


@router.get("/jobs", response_model=list[ResearchJobOut], summary="Recent research jobs, newest first")
def jobs(request: Request, user: User) -> list[ResearchJobOut]:
    return [ResearchJobOut.of(state) for state in research(request).jobs()]


@router.post(
    "/jobs",
    response_model=ResearchJobOut,
    status_code=202,
    summary="Start a backtest, sweep or walk-forward run (one at a time; 409 on a standby instance)",
)
def start(request: Request, user: User, body: JobRequest) -> ResearchJobOut:
    lab = research(request)
    why = _why_not(request, lab)
    if why is not None:
        raise HTTPException(409, why)
    try:
        return ResearchJobOut.of(lab.start(body, user.label))
    except JobRefused as exc:
        raise HTTPException(422, str(exc)) from None
    except ResearchOff as exc:  # Busy too: one job at a time
        raise HTTPException(409, str(exc)) from None


@router.get(
    "/jobs/{job_id}", response_model=ResearchResultOut, summary="A job: its progress, then its figures"
)
def job(request: Request, user: User, job_id: str) -> ResearchResultOut:
    lab = research(request)
    state = lab.job(job_id)
    if state is None:
        raise HTTPException(404, "no such research job")
    return ResearchResultOut(job=ResearchJobOut.of(state), figures=lab.figures(job_id))


@router.delete(
    "/jobs/{job_id}", response_model=ResearchJobOut, summary="Stop a running job (and its processes)"
)
def cancel(request: Request, user: User, job_id: str) -> ResearchJobOut:
    if not JOB_ID.match(job_id):
        raise HTTPException(404, "no such research job")
    try:
        return ResearchJobOut.of(research(request).cancel(job_id, user.label))
    except NoSuchJob:
        raise HTTPException(404, "no such research job") from None


@router.get(
    "/jobs/{job_id}/{name}", summary="One of a job's files: report.html, result.json, sweep.csv, report.txt"
)
def job_file(request: Request, user: User, job_id: str, name: str) -> FileResponse:
    if not FILE_NAME.match(name):
        raise HTTPException(404, "no such file")
    path = research(request).file(job_id, name)
    if path is None:
        raise HTTPException(404, "no such file")
    kind = name.rsplit(".", 1)[1]
    headers = {}
    if name == REPORT_HTML:
        headers["Content-Security-Policy"] = report_policy()
    elif kind in ("json", "csv"):
        headers["Content-Disposition"] = f'attachment; filename="{job_id}-{name}"'
    return FileResponse(path, media_type=MEDIA[kind], headers=headers)


def report_policy() -> str:
    """The report's scripts (by hash) and inline styles; no network, no access to this site."""
    from bot.web.report import script_hashes

    return (
        f"default-src 'none'; script-src {' '.join(script_hashes())}; style-src 'unsafe-inline'; "
        "img-src data:; connect-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'; "
        "sandbox allow-scripts"
    )
