"""Invalid configuration stops the node at start: exit code != 0 within 10 s and a stderr line that names the key
(and the offending value), never a hang, a panic or a node that serves anyway.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import BINARY, E2E_ROOT, free_port

EXIT_DEADLINE_S = 10.0
ANSI = re.compile(r"\x1b\[[0-9;]*m")
LOG_LINE = re.compile(r"^\s*\d{4}-\d\d-\d\dT\d\d:\d\d")  # tracing-subscriber's default format


@pytest.fixture
def workdir(request):
    d = E2E_ROOT / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def run_pinlog(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    if not BINARY.exists():
        pytest.fail(f"pinlog binary not found at {BINARY}")
    addr = f"127.0.0.1:{free_port()}"
    cmd = [str(BINARY), "serve", "--listen", addr, "--advertise", addr, "--node-id", "0", *args]
    full_env = dict(os.environ)
    full_env.update(env or {})
    try:
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=EXIT_DEADLINE_S,
                              env=full_env)
    except subprocess.TimeoutExpired as err:
        stderr = (err.stderr or b"").decode(errors="replace")
        pytest.fail(f"pinlog {' '.join(args)} still running after {EXIT_DEADLINE_S} s; stderr:\n{stderr[-3000:]}")


def assert_rejected(res: subprocess.CompletedProcess, key: str, value: str) -> None:
    stderr = res.stderr.decode(errors="replace")
    assert res.returncode != 0, f"exit code 0 for an invalid {key}; stderr:\n{stderr[-3000:]}"
    assert "panicked" not in stderr, f"pinlog panicked on an invalid {key}:\n{stderr[-3000:]}"
    names = (key, key.replace("_", "-"))
    lines = [ln for ln in stderr.splitlines() if any(n in ln for n in names) and value in ln]
    assert lines, f"no stderr line names {key} and {value!r}; stderr:\n{stderr[-3000:]}"
    # The error is one line: besides tracing log lines (timestamped), stderr holds at most that line.
    other = [ln for ln in stderr.splitlines() if ln.strip() and not LOG_LINE.match(ANSI.sub("", ln))]
    assert len(other) <= 1, f"the error takes {len(other)} lines, not one:\n" + "\n".join(other[:20])


def write_config(workdir: Path, text: str) -> Path:
    path = workdir / "pinlog.toml"
    path.write_text(text)
    return path


def test_unknown_key_in_config_file(workdir):
    cfg = write_config(workdir, 'default_partitions = 2\nbogus_retention_knob = 5\n')
    res = run_pinlog(["--config", str(cfg), "--data-dir", str(workdir / "data")])
    assert_rejected(res, "bogus_retention_knob", "bogus_retention_knob")


def test_shard_cores_naming_a_missing_core(workdir):
    cfg = write_config(workdir, "shard_cores = [99]\n")
    res = run_pinlog(["--config", str(cfg), "--data-dir", str(workdir / "data")])
    assert_rejected(res, "shard_cores", "99")


def test_data_dir_on_tmpfs(workdir):
    shm = Path("/dev/shm")
    if not shm.is_dir():
        pytest.skip("no /dev/shm")
    with open("/proc/mounts") as mounts:
        fs_types = {parts[1]: parts[2] for parts in (line.split() for line in mounts) if len(parts) > 2}
    if fs_types.get("/dev/shm") != "tmpfs":
        pytest.skip(f"/dev/shm is {fs_types.get('/dev/shm')}, not tmpfs")
    data_dir = shm / f"pinlog-e2e-{uuid.uuid4().hex[:8]}"
    try:
        res = run_pinlog(["--data-dir", str(data_dir)])
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    assert_rejected(res, "data_dir", str(data_dir))


def test_unwritable_data_dir(workdir):
    blocker = workdir / "a-regular-file"
    blocker.write_text("not a directory\n")
    data_dir = blocker / "data"
    res = run_pinlog(["--data-dir", str(data_dir)])
    assert_rejected(res, "data_dir", str(data_dir))


def test_unwritable_data_dir_by_env(workdir):
    blocker = workdir / "another-file"
    blocker.write_text("not a directory\n")
    data_dir = blocker / "data"
    res = run_pinlog([], env={"PINLOG_DATA_DIR": str(data_dir)})
    assert_rejected(res, "data_dir", str(data_dir))


def test_raft_core_inside_shard_cores_with_a_free_core(workdir):
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs 2 cores")
    cfg = write_config(workdir, "shard_cores = [0]\nraft_core = 0\n")
    res = run_pinlog(["--config", str(cfg), "--data-dir", str(workdir / "data")])
    assert_rejected(res, "raft_core", "0")


def test_raft_core_explicitly_inside_shard_cores(workdir):
    """The contract: raft_core listed in shard_cores is refused, even when shard_cores names every core (then
    raft_core = "auto" is the way to co-locate)."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs 2 cores")
    cfg = write_config(workdir, "shard_cores = [0, 1]\nraft_core = 1\n")
    res = run_pinlog(["--config", str(cfg), "--data-dir", str(workdir / "data")])
    assert_rejected(res, "raft_core", "1")


def test_default_partitions_zero_flag(workdir):
    res = run_pinlog(["--data-dir", str(workdir / "data"), "--default-partitions", "0"])
    assert_rejected(res, "default_partitions", "0")


def test_bad_flush_policy_in_file(workdir):
    cfg = write_config(workdir, 'flush_policy = "sometimes"\n')
    res = run_pinlog(["--config", str(cfg), "--data-dir", str(workdir / "data")])
    assert_rejected(res, "flush_policy", "sometimes")
