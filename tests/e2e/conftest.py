"""Fixtures that run real pinlog processes.

`pinlog` starts one node with default settings; `pinlog_factory(**flags)` starts nodes with extra flags
(`auto_create_topics=False` -> `--auto-create-topics false`). Each node gets a free loopback port and a fresh data
dir on disk under <repo>/target/e2e/ (O_DIRECT does not work on tmpfs, so never /dev/shm). Its stdout+stderr go to
<data dir>/../<name>.log; a failing test gets the tail of every node's log in its report. A node that died on its
own (crash, panic) fails the test at teardown, and so does a "panicked" line in its log.

Every wait has a deadline: start-up 20 s, graceful stop 15 s, then SIGKILL.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kafka_wire  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("PINLOG_BIN", REPO / "target" / "release" / "pinlog"))
E2E_ROOT = Path(os.environ.get("PINLOG_E2E_DIR", REPO / "target" / "e2e"))
START_DEADLINE_S = 20.0
STOP_DEADLINE_S = 15.0
LOG_TAIL_LINES = 60


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def flag_args(flags: dict) -> list[str]:
    args = []
    for key, value in flags.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as err:
        return f"<no log: {err}>"
    return "\n".join(text.splitlines()[-lines:])


class PinlogServer:
    """One pinlog node. Survives restarts on the same port and data dir."""

    def __init__(self, name: str, data_dir: Path, flags: dict, env: Optional[dict] = None) -> None:
        self.name = name
        self.data_dir = data_dir
        self.flags = dict(flags)
        self.env = env or {}
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0
        self.expected_exit = False

    # -- lifecycle

    def command(self) -> list[str]:
        return [
            str(BINARY), "serve",
            "--data-dir", str(self.data_dir),
            "--listen", self.bootstrap,
            # A test may advertise another address (a proxy in front of the node): `advertise="host:port"`.
            "--advertise", self.flags.get("advertise", self.bootstrap),
            "--node-id", "0",
            *flag_args({k: v for k, v in self.flags.items() if k != "advertise"}),
        ]

    def start(self) -> "PinlogServer":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        if not BINARY.exists():
            pytest.fail(f"pinlog binary not found at {BINARY} (cargo build --release, or set PINLOG_BIN)")
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(self.command())}\n".encode())
            log.flush()
            env = dict(os.environ)
            env.setdefault("RUST_BACKTRACE", "1")
            env.update(self.env)
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                cwd=str(self.data_dir.parent),
            )
        self.expected_exit = False
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_DEADLINE_S
        last_err: object = None
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                self.expected_exit = True
                pytest.fail(f"pinlog exited with code {code} during start-up; log tail:\n{log_tail(self.log_path)}")
            try:
                with kafka_wire.WireClient(self.bootstrap, timeout=2.0) as c:
                    answer = c.api_versions(0)
                if answer["error_code"] == kafka_wire.NONE and answer["apis"]:
                    return
                last_err = f"ApiVersions answered {answer}"
            except (OSError, ValueError, TimeoutError, kafka_wire.ConnectionClosed) as err:
                last_err = err
            time.sleep(0.05)
        self.kill9()
        pytest.fail(
            f"pinlog did not answer ApiVersions on {self.bootstrap} within {START_DEADLINE_S} s ({last_err}); "
            f"log tail:\n{log_tail(self.log_path)}"
        )

    def stop(self) -> int:
        """Graceful stop (SIGTERM), SIGKILL after the deadline. Returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.expected_exit = True
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(STOP_DEADLINE_S)
            raise AssertionError(f"pinlog did not stop within {STOP_DEADLINE_S} s of SIGTERM")

    def kill9(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.expected_exit = True
        self.proc.kill()
        self.proc.wait(STOP_DEADLINE_S)

    def restart(self, graceful: bool = True) -> "PinlogServer":
        if graceful:
            self.stop()
        else:
            self.kill9()
        return self.start()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    # -- convenience

    def wire(self, timeout: float = 15.0) -> kafka_wire.WireClient:
        return kafka_wire.WireClient(self.bootstrap, timeout=timeout)

    def partition_dir(self, topic: str, partition: int) -> Path:
        return self.data_dir / f"{topic}-{partition}"


def _test_dir_name(request) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:80]
    return name


@pytest.fixture
def pinlog_factory(request):
    """Starts nodes: `pinlog_factory(auto_create_topics=False, default_partitions=3)`."""
    servers: list[PinlogServer] = []
    request.node._pinlog_servers = servers
    base = E2E_ROOT / _test_dir_name(request)
    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)

    def make(env: Optional[dict] = None, start: bool = True, **flags) -> PinlogServer:
        data_dir = base / f"node{len(servers)}"
        data_dir.mkdir()
        server = PinlogServer(f"node{len(servers)}", data_dir, flags, env)
        servers.append(server)
        if start:
            server.start()
        return server

    yield make

    problems = []
    for s in servers:
        died = s.proc is not None and s.proc.poll() is not None and not s.expected_exit
        if died:
            problems.append(f"{s.name} died on its own with code {s.proc.returncode}")
        if s.alive:
            s.stop()
        panic = re.search(r"^.*panicked at.*(\n.*)?|RUST_BACKTRACE|stack backtrace", s.log_text(), re.MULTILINE)
        if panic:
            # The panic's own lines first: a CI log may keep only the short summary at its end.
            problems.append(f"{s.name} panicked: {' / '.join(panic.group(0).splitlines())} (see {s.log_path})")
    failed = getattr(request.node, "_pinlog_failed", False)
    if not problems and not failed and os.environ.get("PINLOG_E2E_KEEP") != "1":
        shutil.rmtree(base, ignore_errors=True)
    if problems:
        tails = "\n".join(f"--- {s.name} log tail ({s.log_path}):\n{log_tail(s.log_path)}" for s in servers)
    if problems or failed:
        # Moved aside, so the next run of the same test (a stress loop) does not remove the evidence.
        kept = E2E_ROOT / "failed" / f"{base.name}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        kept.parent.mkdir(parents=True, exist_ok=True)
        base.rename(kept)
        sys.stderr.write(f"e2e: data dirs and logs of the failed test kept in {kept}\n")
    if problems:
        pytest.fail("; ".join(problems) + f" (data dirs and logs kept in {kept})\n" + tails)


@pytest.fixture
def pinlog(pinlog_factory) -> PinlogServer:
    """One node with default settings."""
    return pinlog_factory()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        item._pinlog_failed = True
        for s in getattr(item, "_pinlog_servers", []):
            rep.sections.append((f"pinlog {s.name} log tail ({s.log_path})", log_tail(s.log_path)))


def pytest_collection_modifyitems(config, items):
    if os.environ.get("PINLOG_SOAK") == "1":
        return
    # Soak tests run only on request; run-all.sh also passes -m "not soak".
    skip = pytest.mark.skip(reason="soak test: set PINLOG_SOAK=1")
    markexpr = config.getoption("-m") or ""
    for item in items:
        if "soak" in item.keywords and "soak" not in markexpr:
            item.add_marker(skip)
