"""The ``tradebot`` command line. Each sub-command parses, builds, calls one function.

Heavy libraries are imported inside the sub-commands, so ``tradebot --help`` answers at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

EXIT_TICK_SKIPPED = 75  # EX_TEMPFAIL: another process holds the trading lease; nothing was done
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of our output went away (`tradebot config | head`)
LOG_FILE = "tradebot.log"  # the full log of `tradebot run` at a terminal (the screen stays quiet)
EXIT_CONFIG = 2  # a variable has a value tradebot cannot use (as argparse's usage errors)

DESCRIPTION = """\
tradebot: a chat-ops trading bot for Alpaca (US stocks and crypto).

With no keys at all it trades a built-in simulated market, keeps its state in a local
SQLite file (tradebot.db) and takes commands typed in the console (/help lists them).
Set ALPACA_API_KEY/ALPACA_API_SECRET to trade Alpaca (paper by default), and
TELEGRAM_BOT_TOKEN with TELEGRAM_ALLOWED_CHAT_IDS to command it from Telegram.
Configuration comes from environment variables and a .env file: see .env.example,
or `tradebot config` for the values in effect.
"""

EPILOG = """\
examples:
  tradebot run                         trade (simulated market by default), commands on stdin
  printf '/status\\n/pause\\n/status\\n/resume\\n' | tradebot run
  tradebot tick                        one engine cycle, then exit (cron, Heroku Scheduler)
  tradebot db upgrade                  create or upgrade the database schema (DATABASE_URL)
  tradebot doctor                      check configuration, database, broker and Telegram
  tradebot strategies                  installed strategies and their parameters
  tradebot backtest --strategy supertrend --csv bars.csv --plot out.png
  tradebot data download --symbols AAPL,BTC/USD --timeframe 1m --start 2024-01-01
"""


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            return _dispatch(argv)
        finally:
            sys.stdout.flush()
    except BrokenPipeError:
        if not _stdout_broken():
            raise
        # Like any Unix tool whose reader left (`| head`): stop quietly. Point stdout at /dev/null
        # so the interpreter's own flush at exit does not report the same broken pipe again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _dispatch(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


def _stdout_broken() -> bool:
    """Whether standard output is a pipe (or socket) whose reading end is closed."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(mask & select.POLLERR for _fd, mask in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll() or no descriptor: assume it was stdout
        return True


def build_parser() -> argparse.ArgumentParser:
    from bot import __version__

    parser = argparse.ArgumentParser(
        prog="tradebot",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tradebot {__version__}")
    parser.add_argument(
        "--env-file",
        default=None,
        help="file of VAR=value lines read under the environment (default: .env, if present)",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="trade on a schedule and take commands (console or Telegram)",
        description="Run the engine every TRADEBOT_INTERVAL_SECONDS and serve commands until "
        "SIGTERM (exit status 0), Ctrl-C (130), or the end of standard input in console mode (0). "
        "At a terminal the screen shows replies, alerts and warnings and the full log goes to "
        f"{LOG_FILE} (LOG_LEVEL set explicitly shows it on screen too).",
    )
    run.set_defaults(func=cmd_run)

    tick = sub.add_parser(
        "tick",
        help="run one engine cycle and exit (0 on success)",
        description="One cycle: sync fills, fetch bars, run the strategies, place orders. "
        "Exits non-zero with a message when it cannot run, and with status 75 (EX_TEMPFAIL: try "
        "later) without doing anything while another process, such as `tradebot run`, holds the "
        "trading lease on the same database.",
    )
    tick.set_defaults(func=cmd_tick)

    strategies = sub.add_parser("strategies", help="list installed strategies, their parameters and defaults")
    strategies.set_defaults(func=cmd_strategies)

    config = sub.add_parser("config", help="show the configuration in effect (secrets masked)")
    config.add_argument(
        "--example", action="store_true", help="print a commented .env.example with every variable"
    )
    config.set_defaults(func=cmd_config)

    db = sub.add_parser(
        "db",
        help="database schema: upgrade, current, check",
        description="The schema is created and upgraded by migrations (storage/migrations). "
        "`tradebot run` and `tradebot tick` upgrade it at start unless TRADEBOT_AUTO_MIGRATE=false.",
    )
    db_actions = db.add_subparsers(title="actions", metavar="ACTION", required=True)
    for name, help_text in (
        ("upgrade", "apply every pending migration (safe to run while the bot runs, and twice)"),
        ("current", "show the database's schema revision and the newest this tradebot knows"),
        ("check", "compare the database with the models; non-zero if they differ"),
    ):
        db_actions.add_parser(name, help=help_text).set_defaults(func=cmd_db, action=name)
    revision = db_actions.add_parser(
        "revision", help="developers: write the next migration from the change to storage/models.py"
    )
    revision.add_argument("-m", "--message", required=True, help="what the migration changes")
    revision.set_defaults(func=cmd_db, action="revision")

    doctor = sub.add_parser(
        "doctor",
        help="check configuration, database, broker and Telegram; say what to fix",
        description="Checks the configuration, the database (reachable, schema revision, who holds "
        "the trading lease), the broker and Telegram, and prints what is wrong and how to fix it. "
        "Never prints a secret. Exits 1 if any check failed.",
    )
    doctor.set_defaults(func=cmd_doctor)

    sim = sub.add_parser(
        "sim",
        help="the simulated account: reset it",
        description="The simulated market's account (no Alpaca keys): its books live in the database.",
    )
    sim_actions = sim.add_subparsers(title="actions", metavar="ACTION", required=True)
    reset = sim_actions.add_parser(
        "reset",
        help="start a fresh simulated account (asks first)",
        description="Delete the simulated account's books (orders, fills, positions, trades, equity, "
        "signals, and the simulated exchange's own) and restart its clock at real time; cash starts again "
        "at TRADEBOT_SIM_CASH. Kept: the event log, risk overrides, the pause, Telegram alert settings. "
        "Refused while another process trades on the database, and for a database that holds records "
        "from Alpaca.",
    )
    reset.add_argument("--yes", action="store_true", help="do not ask for confirmation (for scripts)")
    reset.set_defaults(func=cmd_sim_reset)

    from bot.backtest.cli_args import add_backtest_parser  # light: argparse only

    add_backtest_parser(sub)

    from bot.data.commands import add_data_parser  # light: argparse only

    add_data_parser(sub, cmd_data)
    return parser


def _load_settings(args: argparse.Namespace):
    """The validated settings, or one line per invalid variable and exit status 2."""
    from bot.config import ConfigError, Settings

    try:
        settings = Settings.load(env_file=env_file(args))
    except ConfigError as exc:
        _config_fail(exc)
    if settings.tradebot_pure_python:
        from bot import kernels

        kernels.use_pure_python()
    return settings


def _settings(args: argparse.Namespace):
    from bot.logs import setup_logging

    settings = _load_settings(args)
    setup_logging(settings.log_level, settings.log_format, settings.secrets())
    return settings


def env_file(args: argparse.Namespace) -> str:
    """``--env-file`` must exist when given; the default ``.env`` is read only if present."""
    if args.env_file is None:
        return ".env"
    if not os.path.exists(args.env_file):
        _fail(f"--env-file {args.env_file}: no such file", EXIT_CONFIG)
    return str(args.env_file)


def _config_fail(exc: Exception) -> None:
    for line in getattr(exc, "lines", [str(exc)]):
        print(f"tradebot: error: {line}", file=sys.stderr)
    raise SystemExit(EXIT_CONFIG)


def _fail(message: str, status: int = 1) -> None:
    print(f"tradebot: error: {message}", file=sys.stderr)
    raise SystemExit(status)


def _build(args: argparse.Namespace, *, accelerate: bool, settings=None):
    from bot.app import StartupError, build_app
    from bot.config import ConfigError

    settings = settings or _settings(args)
    try:
        return build_app(settings, accelerate=accelerate)
    except ConfigError as exc:
        _config_fail(exc)
    except StartupError as exc:
        _fail(str(exc))


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio
    from pathlib import Path

    from bot.console import is_terminal
    from bot.logs import setup_logging
    from bot.runner import serve
    from bot.web.config import WebConfig, WebConfigError
    from bot.web.server import WebStartError

    settings = _load_settings(args)
    try:
        WebConfig.from_settings(settings)  # refuse an open dashboard before touching anything
    except WebConfigError as exc:
        _fail(f"web server: {exc}")
    console = settings.wants_console()
    # A person at a terminal reads replies and alerts; the full log would drown them.
    at_terminal = console and is_terminal(sys.stdin, sys.stdout, sys.stderr) and settings.log_format != "json"
    quiet = at_terminal and not settings.is_set("LOG_LEVEL")
    log_file = Path(LOG_FILE).resolve() if quiet else None
    setup_logging(
        settings.log_level,
        settings.log_format,
        settings.secrets(),
        screen_level="WARNING" if quiet else None,
        hide_alerts=at_terminal,
        log_file=log_file,
    )
    app = _build(args, accelerate=True, settings=settings)
    if log_file is not None:
        app.banner.append(
            f"Full log: {log_file} (this screen shows replies, alerts and warnings; "
            "LOG_LEVEL=INFO shows the full log here too)"
        )
    try:
        return asyncio.run(serve(app, console=console))
    except WebStartError as exc:
        _fail(f"web server: {exc}")
    return 1


def cmd_tick(args: argparse.Namespace) -> int:
    from bot import formatting as fmt
    from storage.db import DatabaseError

    app = _build(args, accelerate=False)
    for line in app.banner:
        print(line)
    try:
        held = app.lease.try_acquire()
    except DatabaseError as exc:
        _fail(f"cannot take the trading lease: {exc}")
    if not held:
        print(f"Tick skipped, nothing done: {app.lease.standby_reason()}.")
        app.db.dispose()
        return EXIT_TICK_SKIPPED
    try:
        with app.lease.renewing():
            app.service.reconcile()
            report = app.engine.tick()
    except Exception as exc:
        _fail(f"cycle failed: {type(exc).__name__}: {exc}")
    finally:
        try:
            app.lease.release()
        except DatabaseError as exc:
            print(
                f"warning: could not release the trading lease (it expires by itself): {exc}", file=sys.stderr
            )
    print(f"Cycle at {fmt.when(report.started, simulated=app.mode == 'sim')}: {fmt.cycle(report)}")
    for outcome in report.orders:
        print("  " + fmt.outcome(outcome))
    for symbol, problem in sorted(report.data_problems.items()):
        print(f"  skipped {symbol}: {problem}")
    for name, error in sorted(report.strategy_errors.items()):
        print(f"  strategy error {name}: {error}")
    app.db.dispose()
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from storage import migrate
    from storage.db import Database, DatabaseError, safe_url

    if args.action == "revision":
        print(f"Wrote {migrate.revision(args.message)}: review it before committing.")
        return 0
    settings = _settings(args)
    db = Database(settings.database_url)
    where = safe_url(settings.database_url)
    try:
        if args.action == "upgrade":
            result = migrate.upgrade(db)
            if result.changed:
                print(
                    f"{where}: upgraded from {migrate.describe(result.before)} to {migrate.describe(result.after)}"
                )
            else:
                print(f"{where}: already at {migrate.describe(result.after)}, the newest")
        elif args.action == "current":
            now, newest = migrate.current(db), migrate.head()
            print(f"{where}: revision {migrate.describe(now)}")
            print(f"this tradebot's newest: {migrate.describe(newest)}")
            if now != newest:
                print("run `tradebot db upgrade` to bring the database up to date")
        else:
            differences = migrate.check(db)
            for difference in differences:
                print(difference)
            print(f"{where}: " + ("differs from the models" if differences else "matches the models"))
            return 1 if differences else 0
    except DatabaseError as exc:
        _fail(str(exc))
    finally:
        db.dispose()
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from bot.doctor import run_doctor

    return run_doctor(env_file=env_file(args))


def cmd_sim_reset(args: argparse.Namespace) -> int:
    from bot.simaccount import Refused, reset_command

    settings = _settings(args)
    try:
        return reset_command(settings, assume_yes=args.yes)
    except Refused as exc:
        _fail(f"not reset: {exc}", exc.status)
    return 1


def cmd_data(args: argparse.Namespace) -> int:
    from bot.data.commands import cmd_data as run_data

    return run_data(args, _settings(args))


def cmd_strategies(args: argparse.Namespace) -> int:
    from bot.plugins import load_registry

    registry = load_registry()
    for name, cls in sorted(registry.strategies.items()):
        print(f"{name}  (from {registry.sources[name]})")
        if cls.description:
            print(f"    {cls.description}")
        for key, param in cls.params.items():
            bounds = (
                f"{param.min:g}..{param.max:g}" if param.min is not None and param.max is not None else "any"
            )
            note = f"  {param.help}" if param.help else ""
            print(f"    {key} = {param.default:g}  ({param.kind.__name__}, {bounds}){note}")
    for error in registry.errors:
        print(f"error: {error}", file=sys.stderr)
    return 0 if registry.strategies else 1


def cmd_config(args: argparse.Namespace) -> int:
    if args.example:
        from bot.config import env_example

        print(env_example(), end="")
        return 0
    from bot.config import ConfigError, checks, describe

    settings = _settings(args)
    try:
        checks.strategies(settings)  # names and bounds come from the installed plugins
    except ConfigError as exc:
        _config_fail(exc)
    overrides = _stored_overrides(settings)
    for row in describe(settings):
        entry = overrides.get(row.name.lower())
        origin = str(row.source)
        if entry is not None:  # `/risk set` beats the configuration: say so, and what it beats
            from bot import formatting as fmt

            at = datetime.fromisoformat(entry["at"]) if entry.get("at") else None
            configured = (
                "by default" if origin == "default" else f"from the {origin}".replace("the .env", ".env")
            )
            when = f" at {fmt.when(at, simulated=not settings.alpaca_enabled)}" if at else ""
            origin = f"set by {entry.get('by') or 'someone'}{when} with /risk set; configured {row.shown} {configured}"
            row = replace(row, shown=f"{float(entry['value']):g}")
        print(f"{row.name}={row.shown}  ({origin})\n    {row.help}")
    return 0


def _stored_overrides(settings):
    """The runtime risk overrides in the configured database; a note on stderr if unreadable."""
    from bot.service.store import stored_overrides
    from storage.db import DatabaseError

    try:
        return stored_overrides(settings.database_url)
    except DatabaseError as exc:
        print(f"note: runtime overrides (/risk set) not read: {exc}", file=sys.stderr)
        return {}


if __name__ == "__main__":
    sys.exit(main())
