"""The README's examples, run as written (issue 10, point 7).

Every line of every ```bash block is a test case, found by reading the README, so a command
someone adds is covered without editing this file. Each runs with ``bash -c`` exactly as
written, in a fresh copy of the repository (its tracked and new files, as a fresh clone has
them), with no tradebot setting inherited from the environment and standard input at end of
file, as in a script. It must exit 0 without a traceback. A command that cannot run here is
listed in ``NOT_RUN`` with the reason; an entry that no longer matches a README line fails.

The README must also name no file that is not in the repository, and its plugin example (the
``toml`` and ``python`` blocks) must load and backtest as a third-party package.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.processes import ISOLATED_PREFIXES

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

# Commands that are not run, and why. Keys are regular expressions matched at the line's start.
NOT_RUN = {
    r"heroku ": "needs the Heroku CLI, a Heroku account and the network",
    r"git push heroku ": "needs a Heroku git remote and the network",
    r"pip install -e '\.\[dev\]' && pytest": "the test suite itself: .ci/run runs exactly this in a fresh virtualenv",
    r"pip install -e '\.\[cluster\]'": "installs Dask, which the dev extra these tests run with already has",
    r"dask (scheduler|worker) ": "starts a Dask server that runs until stopped; tests/test_cluster.py starts a LocalCluster",
    r"(?s)tradebot backtest .*--cluster tcp://SCHEDULER": "needs a Dask cluster; tests/test_cluster.py runs one",
    r"tradebot data (download|update)": "needs Alpaca keys and the network; tests/test_data_store.py runs both "
    "against the fake Alpaca server",
}
# A leading install step is what built the environment these tests run in (.ci/run does it from
# scratch in a fresh virtualenv, so it is covered there); the rest of the line runs as written.
INSTALL = re.compile(r"^pip install -e (?:\.|'\.\[dev\]') && ")
# Lines that fail today because of a change under way elsewhere, as regular expressions like
# NOT_RUN's. Expected to fail, strictly: once such a line passes, or no README line matches the
# entry any more, a test fails until the entry is removed.
PENDING: dict[str, str] = {}

TIMEOUT = 300
# Commands that run until stopped (`tradebot run` trades on when standard input is empty, as on a
# platform): run as written until their output shows ``marker``, then stopped with SIGTERM as a
# platform stops them, which must end them with status 0 and the stop announced.
UNTIL_STOPPED = {r"tradebot run +#": r"ALERT (Buy|Sell) .* placed"}
STOP_SECONDS = 30


FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)  # (language, body), in order


def bash_commands(text: str) -> list[str]:
    """Each command of each ```bash block: continuation lines joined, comment-only lines dropped."""
    commands = []
    for block in [body for language, body in FENCE.findall(text) if language == "bash"]:
        current: list[str] = []
        for line in block.splitlines():
            current.append(line)
            if line.rstrip().endswith("\\"):
                continue
            command = "\n".join(current).strip()
            current = []
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


COMMANDS = bash_commands(README)


def not_run_reason(command: str) -> str | None:
    for pattern, reason in NOT_RUN.items():
        if re.match(pattern, command):
            return reason
    return None


def _case(command: str) -> object:
    name = command.splitlines()[0][:90]
    for pattern, reason in PENDING.items():
        if re.match(pattern, command, re.DOTALL):
            return pytest.param(command, id=name, marks=pytest.mark.xfail(strict=True, reason=reason))
    return pytest.param(command, id=name)


@pytest.fixture
def fresh_clone(tmp_path: Path) -> Path:
    """The repository's files as a fresh clone has them (tracked, plus new files not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    clone = tmp_path / "tradebot"
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            target = clone / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return clone


def user_environment(home: Path) -> dict[str, str]:
    """A user's shell: no tradebot, Alpaca or Telegram setting; this environment's tradebot on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ISOLATED_PREFIXES)}
    env.pop("PYTHONPATH", None)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["HOME"] = str(home)
    return env


@pytest.mark.parametrize("command", [_case(c) for c in COMMANDS])
def test_readme_command_runs_as_written(command: str, fresh_clone: Path, tmp_path: Path) -> None:
    reason = not_run_reason(command)
    if reason:
        pytest.skip(reason)
    runnable = INSTALL.sub("", command)
    marker = next((m for pattern, m in UNTIL_STOPPED.items() if re.match(pattern, runnable)), None)
    if marker is not None:
        run_until(runnable, marker, fresh_clone, user_environment(tmp_path))
        return
    result = subprocess.run(
        ["bash", "-c", runnable],
        cwd=fresh_clone,
        env=user_environment(tmp_path),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    shown = f"$ {runnable}\n--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
    assert result.returncode == 0, shown
    assert "Traceback" not in result.stderr, shown
    assert "Exception ignored" not in result.stderr, shown
    for pattern, check in EXPECTED.items():
        if re.match(pattern, runnable):
            check(result.stdout)


def run_until(runnable: str, marker: str, cwd: Path, env: dict[str, str]) -> None:
    """Run until a line of standard output matches ``marker``, then SIGTERM: exit status 0."""
    import signal
    import time

    out = cwd / "stdout.txt"
    with out.open("w") as sink:
        process = subprocess.Popen(
            ["bash", "-c", runnable], cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=sink,
            stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + TIMEOUT
        try:
            while (
                not re.search(marker, out.read_text())
                and process.poll() is None
                and time.monotonic() < deadline
            ):
                time.sleep(0.2)
            seen = re.search(marker, out.read_text())
            os.killpg(process.pid, signal.SIGTERM)
            _, stderr = process.communicate(timeout=STOP_SECONDS)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    shown = f"$ {runnable}\n--- stdout\n{out.read_text()[-3000:]}\n--- stderr\n{stderr[-3000:]}"
    assert seen, f"no line matching {marker!r}:\n{shown}"
    assert process.returncode == 0, shown
    assert "tradebot stopped." in out.read_text(), shown
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, shown


def _script_example(out: str) -> None:
    states = re.findall(r"^State: (\w+)", out, re.MULTILINE)
    assert states[:2] == ["active", "PAUSED"], out
    assert "Resumed: new entries allowed." in out, out  # the next run does not start paused


# What some commands must show, beyond a clean exit.
EXPECTED = {
    r"printf '/status\\n/pause\\n/status\\n/resume\\n' \| tradebot run": _script_example,
}


def test_every_exception_still_names_a_readme_command():
    for pattern in NOT_RUN:
        assert any(re.match(pattern, c) for c in COMMANDS), (
            f"NOT_RUN entry {pattern!r} matches no README command"
        )
    for pattern in PENDING:
        assert any(re.match(pattern, c, re.DOTALL) for c in COMMANDS), f"PENDING entry {pattern!r}: remove it"
    for pattern in EXPECTED:
        assert any(re.match(pattern, INSTALL.sub("", c)) for c in COMMANDS), pattern


# --------------------------------------------------------------------------- files it names

# Files the README names that the bot or a command creates at run time, not the repository.
CREATED_AT_RUN_TIME = {
    "tradebot.db": "the default SQLite database",
    "tradebot.log": "the full log of `tradebot run` at a terminal",
    "tradebot-data/": "the local bar store (tradebot data download)",
    "out.json": "written by the backtest example",
    "out.png": "written by the backtest example",
    "sweep.csv": "written by the backtest example",
    ".env": "the user's own settings file",
}
FILE_LIKE = re.compile(r"^[\w.][\w.-]*(?:/[\w.-]+)*/?$")
EXTENSIONS = {"py", "md", "c", "toml", "json", "csv", "png", "txt", "example", "db", "log", "cfg", "yml"}
SYMBOL_PAIR = re.compile(r"^[A-Z]+/[A-Z]+$")


PICTURE_PATH = re.compile(r"(?<![\w/.-])((?:bot|storage|plugins|tests|benchmarks)/[\w./-]*)")


def named_files(text: str) -> set[str]:
    """Paths the README names: link targets, inline code that looks like a file or folder, and
    the repository paths in plain ``` blocks (the design picture)."""
    prose = FENCE.sub("", text)
    names = {t for t in re.findall(r"\]\(([^)#\s]+)\)", prose) if "://" not in t}
    for language, body in FENCE.findall(text):
        if not language:
            names.update(PICTURE_PATH.findall(body))
    for token in re.findall(r"`([^`\n]+)`", prose):
        if not FILE_LIKE.match(token) or SYMBOL_PAIR.match(token):
            continue
        if "/" in token or ("." in token and token.rsplit(".", 1)[-1] in EXTENSIONS):
            names.add(token)
    return names


def test_the_readme_names_only_files_in_the_repository():
    tracked = set(
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    )
    basenames = {Path(name).name for name in tracked}
    parents = {parent for name in tracked for parent in Path(name).parents if str(parent) != "."}
    folders = {f"{p}/" for p in parents} | {f"{p.name}/" for p in parents}  # `bot/` or `brokers/` (in bot/)
    missing = []
    for name in sorted(named_files(README)):
        if name in CREATED_AT_RUN_TIME or any(
            name.startswith(d) for d in CREATED_AT_RUN_TIME if d.endswith("/")
        ):
            continue
        if name.endswith("/"):
            found = name in folders
        elif "/" in name:
            found = name in tracked
        else:
            found = name in basenames
        if not found:
            missing.append(name)
    assert not missing, f"the README names files that are not in the repository: {missing}"


def test_the_file_check_would_see_a_missing_file():
    text = "see `ARCHITECTURE.md` and [x](docs/NOPE.md), `BTC/USD`, `bot/engine.py`\n```\n a -> bot/gone.py)\n```\n"
    assert named_files(text) == {"ARCHITECTURE.md", "docs/NOPE.md", "bot/engine.py", "bot/gone.py"}


# --------------------------------------------------------------------------- the plugin example


def code_block(language: str, text: str = README) -> str:
    blocks = [body for lang, body in FENCE.findall(text) if lang == language]
    assert len(blocks) == 1, f"expected one ```{language} block in the README, found {len(blocks)}"
    return blocks[0]


def test_the_plugin_example_loads_and_backtests_as_a_third_party_package(tmp_path):
    entry_points = tomllib.loads(code_block("toml"))["project"]["entry-points"]["tradebot"]
    source = code_block("python")
    path = re.match(r"# (\S+\.py)\n", source)
    assert path, "the python block's first line names its file"
    site = tmp_path / "site"
    module_file = site / path.group(1)
    module_file.parent.mkdir(parents=True)
    (module_file.parent / "__init__.py").write_text("")
    module_file.write_text(source)
    info = site / "my_package-0.1.dist-info"  # what pip lays out for an installed distribution
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-package\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[tradebot]\n" + "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    )
    env = {**user_environment(tmp_path), "PYTHONPATH": str(site)}

    def tradebot(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(Path(sys.executable).parent / "tradebot"), *args],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )

    listed = tradebot("strategies")
    assert listed.returncode == 0, listed.stderr
    assert f"breakout  (from {next(iter(entry_points))})" in listed.stdout, listed.stdout + listed.stderr
    assert "lookback = 20" in listed.stdout
    backtest = tradebot(
        "backtest",
        "--strategy",
        "breakout",
        "--symbol",
        "AAPL",
        "--start",
        "2024-01-02",
        "--end",
        "2024-01-09",
    )
    assert backtest.returncode == 0, backtest.stderr
    assert "Traceback" not in backtest.stderr
