#!/usr/bin/env bash
# Installs the test dependencies, builds pinlog, checks formatting and clippy, runs the unit tests and then the
# end-to-end suite against real pinlog processes. Exits non-zero if anything failed. PINLOG_SOAK=1 also runs the soak
# tests.
# Knobs: PINLOG_LOAD_SECONDS (max-rate load, default 20), PINLOG_E2E_ARGS (extra pytest arguments, e.g. "-k fetch"),
# PINLOG_SKIP_UNIT=1 (skip cargo test), PINLOG_E2E_KEEP=1 (keep the data dirs of passing tests under target/e2e).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

echo "=== install dependencies"
./tests/install-deps.sh
# The workspace build includes pinlog-bench, whose vendored librdkafka needs cmake; the smoke run needs fio.
./bench/install-deps.sh

echo "=== cargo build --release --workspace"
cargo build --release --workspace

# The code rules (cargo fmt, cargo clippy with no warnings) hold on every commit, not only on the machine that wrote
# it. Both tools come with rustup's default profile; a toolchain without them gets them from rustup.
echo "=== cargo fmt --check, cargo clippy -D warnings"
lint_rc=0
if ! cargo fmt --version > /dev/null 2>&1 || ! cargo clippy --version > /dev/null 2>&1; then
    rustup component add rustfmt clippy || lint_rc=$?
fi
if [ "$lint_rc" -eq 0 ]; then
    cargo fmt --all -- --check || lint_rc=$?
    cargo clippy --workspace --all-targets --release -- -D warnings || lint_rc=$?
fi

unit_rc=0
if [ "${PINLOG_SKIP_UNIT:-0}" != "1" ]; then
    echo "=== cargo test --workspace --release"
    cargo test --workspace --release || unit_rc=$?
fi

marks=(-m "not soak")
if [ "${PINLOG_SOAK:-0}" = "1" ]; then
    marks=()
fi
echo "=== end-to-end tests (pytest tests/e2e)"
e2e_rc=0
# shellcheck disable=SC2086 # PINLOG_E2E_ARGS is split on purpose
timeout --signal=INT --kill-after=60 "${PINLOG_E2E_DEADLINE_S:-2700}" \
    tests/.venv/bin/python -m pytest -c tests/pytest.ini --rootdir tests -p no:cacheprovider \
    "${marks[@]}" ${PINLOG_E2E_ARGS:-} tests/e2e || e2e_rc=$?

echo "=== bench smoke (every workload for a few seconds, both drivers; checks the results, asserts no speed)"
bench_rc=0
BENCH_SKIP_BUILD=1 timeout --kill-after=60 "${PINLOG_BENCH_DEADLINE_S:-1200}" bench/scripts/smoke.sh || bench_rc=$?

if [ "$bench_rc" -ne 0 ]; then
    echo "run-all: bench smoke failed (exit code $bench_rc)" >&2
fi
if [ "$lint_rc" -ne 0 ]; then
    echo "run-all: cargo fmt or cargo clippy found problems (exit code $lint_rc)" >&2
fi
if [ "$unit_rc" -ne 0 ]; then
    echo "run-all: unit tests failed (cargo test exit code $unit_rc)" >&2
fi
if [ "$e2e_rc" -ne 0 ]; then
    echo "run-all: end-to-end tests failed (pytest exit code $e2e_rc)" >&2
fi
[ "$lint_rc" -eq 0 ] && [ "$unit_rc" -eq 0 ] && [ "$e2e_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
