"""``/api/v1``: JSON for everything the pages show, and the actions.

Reads call ``Dashboard`` (the service's public methods) in FastAPI's worker threads. Actions go
through the same ``CommandRouter`` as Telegram and the console: the same parsing, checks and
confirmation step (buy, sell, flatten, cancel and risk set or reset answer with a confirmation to
POST back within TRADEBOT_CONFIRM_SECONDS), recorded with the web user's name. A confirmation does exactly what its
prompt showed: if the state changed meanwhile, the POST does nothing and answers with the new
question (its own confirmation, ``replaces`` saying why). A standby instance answers actions with 409.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import PlainTextResponse

from bot import __version__
from bot.commands import Caller, Reply
from bot.domain import EventKind
from bot.logs import RECENT, RECENT_LINES
from bot.periods import Period
from bot.views import Page
from bot.web import schemas as s
from bot.web.auth import Principal
from bot.web.data import Invalid, NotFound, to_csv
from bot.web.security import context, require_csrf, require_user

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_csrf)])
User = Annotated[Principal, Depends(require_user)]

SYMBOL = re.compile(r"^[A-Za-z0-9.\-]{1,12}(/[A-Za-z]{2,6})?$")
QTY = re.compile(r"^(all|[0-9]+(\.[0-9]+)?)$", re.IGNORECASE)
LIMIT_NAME = re.compile(r"^[a-z_]{1,40}$")
CONFIRMATION_ID = re.compile(r"^[0-9a-f]{8}$")
ORDER_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
PROFIT_PERIODS = {Period.DAY: 30, Period.WEEK: 12, Period.MONTH: 12}  # shown unless ?count= says
PROFIT_PERIODS_MAX = 366
# Rows in one page of /orders, /trades or /events (README, Limits): each page costs what it shows;
# older rows are the next page, asked for with ``before=`` the ``X-Next-Before`` header's value.
PAGE_MAX = 500
CSV_MAX = 5000  # rows in one CSV export (orders.csv, trades.csv), newest first
Before = Annotated[
    int | None,
    Query(ge=1, description="the cursor: rows older than this one (the previous page's X-Next-Before)"),
]


def _missing(exc: NotFound) -> HTTPException:
    return HTTPException(404, str(exc))


# ---------------------------------------------------------------------- reads


@router.get("/status", response_model=s.StatusOut, summary="Mode, state, equity, last cycle, data health")
def status(request: Request, user: User) -> s.StatusOut:
    return context(request).dashboard.status()


@router.get(
    "/overview", response_model=s.OverviewOut, summary="Status, positions, open orders, latest events"
)
def overview(request: Request, user: User) -> s.OverviewOut:
    return context(request).dashboard.overview()


@router.get("/positions", response_model=list[s.PositionOut], summary="Open positions with live P&L")
def positions(request: Request, user: User) -> list[s.PositionOut]:
    return context(request).dashboard.positions()


@router.get(
    "/orders",
    response_model=list[s.OrderOut],
    summary="Orders, newest first, filterable, one page (X-Next-Before: the next page's cursor)",
)
def orders(
    request: Request,
    response: Response,
    user: User,
    open_only: bool = False,
    symbol: str | None = None,
    side: str | None = None,
    status: str | None = None,
    strategy: str | None = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 200,
    before: Before = None,
) -> list[s.OrderOut]:
    page = context(request).dashboard.order_page(
        open_only=open_only,
        symbol=symbol,
        side=side,
        status=status,
        strategy=strategy,
        limit=limit,
        before=before,
    )
    return _paged(request, response, page)


@router.get("/orders.csv", response_class=PlainTextResponse, summary="The same orders as CSV")
def orders_csv(
    request: Request,
    user: User,
    open_only: bool = False,
    symbol: str | None = None,
    side: str | None = None,
    status: str | None = None,
    strategy: str | None = None,
    limit: Annotated[int, Query(ge=1, le=CSV_MAX)] = 1000,
) -> PlainTextResponse:
    rows = context(request).dashboard.orders(
        open_only=open_only, symbol=symbol, side=side, status=status, strategy=strategy, limit=limit
    )
    return _csv(to_csv(rows, s.OrderOut), "orders.csv")


@router.get(
    "/trades",
    response_model=list[s.TradeOut],
    summary="Closed trades, newest first, filterable, one page (X-Next-Before: the next page's cursor)",
)
def trades(
    request: Request,
    response: Response,
    user: User,
    symbol: str | None = None,
    strategy: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    result: Annotated[str | None, Query(pattern="^(win|loss)$")] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 500,
    before: Before = None,
) -> list[s.TradeOut]:
    try:
        page = context(request).dashboard.trade_page(
            symbol=symbol,
            strategy=strategy,
            since=since,
            until=until,
            result=result,
            limit=limit,
            before=before,
        )
    except NotFound as exc:
        raise _missing(exc) from None
    return _paged(request, response, page)


@router.get("/trades.csv", response_class=PlainTextResponse, summary="The same trades as CSV")
def trades_csv(
    request: Request,
    user: User,
    symbol: str | None = None,
    strategy: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    result: Annotated[str | None, Query(pattern="^(win|loss)$")] = None,
    limit: Annotated[int, Query(ge=1, le=CSV_MAX)] = CSV_MAX,
) -> PlainTextResponse:
    rows = context(request).dashboard.trades(
        symbol=symbol, strategy=strategy, since=since, until=until, result=result, limit=limit
    )
    return _csv(to_csv(rows, s.TradeOut), "trades.csv")


@router.get("/pnl", response_model=s.PnlOut, summary="Profit and loss, Sharpe, drawdown, win rate")
def pnl(request: Request, user: User) -> s.PnlOut:
    report = context(request).dashboard.service.pnl()
    return s.PnlOut(
        **{name: getattr(report, name) for name in s.PnlOut.model_fields if name != "per_strategy"},
        per_strategy=[
            s.StrategyPnlOut(strategy=p.strategy, trades=p.trades, pnl=p.pnl, win_rate=p.win_rate)
            for p in report.per_strategy
        ],
    )


@router.get("/equity", response_model=s.EquityOut, summary="Equity curve and drawdown")
def equity(request: Request, user: User) -> s.EquityOut:
    return context(request).dashboard.equity()


@router.get(
    "/profit",
    response_model=s.ProfitOut,
    summary="Realized profit by day, week or month (UTC; ISO weeks), newest first",
)
def profit(
    request: Request,
    user: User,
    period: Period = Period.DAY,
    count: Annotated[int | None, Query(ge=1, le=PROFIT_PERIODS_MAX)] = None,
) -> s.ProfitOut:
    return context(request).dashboard.profit(period, count or PROFIT_PERIODS[period])


@router.get(
    "/bars/{symbol:path}",
    response_model=s.BarsOut,
    summary="A symbol's bars with the strategies' lines, entries and exits, stop and target",
)
def bars(request: Request, user: User, symbol: str, timeframe: str | None = None) -> s.BarsOut:
    try:
        return context(request).dashboard.bars(symbol, timeframe)
    except NotFound as exc:
        raise _missing(exc) from None
    except Invalid as exc:
        raise HTTPException(422, str(exc)) from None


@router.get("/strategies", response_model=list[s.StrategyOut], summary="Running strategies and how they do")
def strategies(request: Request, user: User) -> list[s.StrategyOut]:
    return context(request).dashboard.strategies()


@router.get("/risk", response_model=s.RiskOut, summary="Every limit, its source, and what is used of it")
def risk(request: Request, user: User) -> s.RiskOut:
    return context(request).dashboard.risk()


@router.get("/logs", response_model=s.LogsOut, summary="The recent log lines, secrets masked, oldest first")
def logs(
    user: User,
    after: Annotated[int, Query(ge=0, description="only lines after this seq")] = 0,
    level: Annotated[LogLevel, Query(description="this level and above")] = "DEBUG",
    limit: Annotated[int, Query(ge=1, le=RECENT_LINES)] = 500,
) -> s.LogsOut:
    lines, newest = RECENT.after(after, level, limit)
    return s.LogsOut(
        lines=[
            s.LogLineOut(seq=x.seq, time=x.time, level=x.level, logger=x.logger, message=x.message)
            for x in lines
        ],
        last_seq=newest,
        kept=RECENT.size,
    )


@router.get("/events/kinds", response_model=list[str], summary="Every kind of event the log records")
def event_kinds(user: User) -> list[str]:
    return [kind.value for kind in EventKind]  # the events page's filter: never a copy that drifts


@router.get(
    "/events",
    response_model=list[s.EventOut],
    summary="The audit log, newest first, one page (X-Next-Before: the next page's cursor)",
)
def events(
    request: Request,
    response: Response,
    user: User,
    kind: str | None = None,
    before: Before = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 100,
) -> list[s.EventOut]:
    try:
        page = context(request).dashboard.event_page(kind=kind, before=before, limit=limit)
    except NotFound as exc:
        raise _missing(exc) from None
    return _paged(request, response, page)


# ---------------------------------------------------------------------- actions


@router.post("/pause", response_model=s.ActionOut, summary="Stop new entries (exits keep working)")
def pause(request: Request, user: User) -> s.ActionOut:
    return _command(request, user, "/pause")


@router.post("/resume", response_model=s.ActionOut, summary="Allow new entries again")
def resume(request: Request, user: User) -> s.ActionOut:
    return _command(request, user, "/resume")


@router.post("/risk", response_model=s.ActionOut, summary="Change one risk limit (asks for confirmation)")
def set_risk(request: Request, user: User, body: s.RiskSetIn) -> s.ActionOut:
    if not LIMIT_NAME.match(body.name):
        raise HTTPException(422, f"{body.name!r} is not a limit name")
    return _command(request, user, f"/risk set {body.name} {body.value!r}")


@router.delete(
    "/risk/{name}",
    response_model=s.ActionOut,
    summary="Reset a risk limit (or all) to its configured value (asks for confirmation)",
)
def reset_risk(request: Request, user: User, name: str) -> s.ActionOut:
    if not LIMIT_NAME.match(name):
        raise HTTPException(422, f"{name!r} is not a limit name (or all)")
    return _command(request, user, f"/risk reset {name}")


@router.post("/orders", response_model=s.ActionOut, summary="Buy or sell at market (asks for confirmation)")
def place_order(request: Request, user: User, body: s.OrderIn) -> s.ActionOut:
    if not SYMBOL.match(body.symbol):
        raise HTTPException(422, f"{body.symbol!r} is not a symbol (AAPL, BTC/USD)")
    if not QTY.match(body.qty.strip()) or (body.side == "buy" and body.qty.strip().lower() == "all"):
        raise HTTPException(422, f"{body.qty!r} is not a quantity")
    return _command(request, user, f"/{body.side} {body.symbol} {body.qty.strip()}")


@router.post("/flatten", response_model=s.ActionOut, summary="Close every position at market (asks first)")
def flatten(request: Request, user: User) -> s.ActionOut:
    return _command(request, user, "/flatten")


@router.delete(
    "/orders/{client_order_id}",
    response_model=s.ActionOut,
    summary="Cancel what is left of a working order (asks for confirmation)",
)
def cancel_order(request: Request, user: User, client_order_id: str) -> s.ActionOut:
    if not ORDER_ID.match(client_order_id):
        raise HTTPException(422, f"{client_order_id!r} is not an order id")
    return _command(request, user, f"/cancel {client_order_id}")


@router.post(
    "/confirmations/{confirmation_id}", response_model=s.ActionOut, summary="Confirm a pending action"
)
def confirm(request: Request, user: User, confirmation_id: str) -> s.ActionOut:
    _writable(request)
    if not CONFIRMATION_ID.match(confirmation_id):
        raise HTTPException(404, "no such confirmation")
    return _out(context(request).app.router.confirm(confirmation_id, _caller(user)))


@router.delete(
    "/confirmations/{confirmation_id}", response_model=s.ActionOut, summary="Cancel a pending action"
)
def cancel(request: Request, user: User, confirmation_id: str) -> s.ActionOut:
    if not CONFIRMATION_ID.match(confirmation_id):
        raise HTTPException(404, "no such confirmation")
    return _out(context(request).app.router.cancel(confirmation_id, _caller(user)))


@router.get("/version", summary="The running tradebot's version")
def version(user: User) -> dict[str, str]:
    return {"version": __version__}


def _command(request: Request, user: Principal, text: str) -> s.ActionOut:
    _writable(request)
    return _out(context(request).app.router.handle(text, _caller(user)))


def _writable(request: Request) -> None:
    dashboard = context(request).dashboard
    if dashboard.read_only():
        raise HTTPException(
            409,
            f"this instance is read-only ({context(request).app.lease.describe()}): act on the trading one",
        )


def _caller(user: Principal) -> Caller:
    return Caller(transport="web", chat_id=user.chat_id, name=user.label)


def _out(reply: Reply) -> s.ActionOut:
    confirmation = None
    if reply.confirmation is not None:
        c = reply.confirmation
        confirmation = s.ConfirmationOut(
            id=c.token, prompt=c.prompt, expires_at=c.expires_at, expires_in=c.seconds, replaces=c.replaces
        )
    return s.ActionOut(text=reply.text, confirmation=confirmation)


def _paged(request: Request, response: Response, page: Page) -> list:
    """The page's rows; where older ones follow, their cursor in ``X-Next-Before`` and the URL of
    the next page (the same query, ``before`` set) in ``Link``."""
    if page.next_before is not None:
        response.headers["X-Next-Before"] = str(page.next_before)
        url = request.url.remove_query_params("before").include_query_params(before=page.next_before)
        response.headers["Link"] = f'<{url.path}?{url.query}>; rel="next"'
    return page.items


def _csv(text: str, name: str) -> PlainTextResponse:
    return PlainTextResponse(
        text, media_type="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
