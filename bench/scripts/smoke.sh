#!/usr/bin/env bash
# Smoke test of the bench suite: every workload for a few seconds against a pinlog it starts (fresh data dir on the
# disk), with both drivers' code paths exercised; asserts each result JSON is valid and complete. Speed is not judged.
# Called by tests/run-all.sh. Knobs: BENCH_SMOKE_SECONDS (default 3), BENCH_SMOKE_DRIVERS (default "native rdkafka"),
# BENCH_SKIP_BUILD=1 (use the binaries already in target/release).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$bench_repo"

seconds="${BENCH_SMOKE_SECONDS:-3}"
drivers="${BENCH_SMOKE_DRIVERS:-native rdkafka}"
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release -q -p pinlog --bin pinlog
    cargo build --release -q -p pinlog-bench
fi
bench_bin="$bench_repo/target/release/pinlog-bench"

work="$bench_repo/target/bench-smoke"
rm -rf "$work"
mkdir -p "$work"
check_disk "$work"
trap 'stop_broker' EXIT

# Limits are cached for an hour in bench/results/limits.json; the smoke run reuses them when fresh.
"$bench_bin" limits --data-dir "$work" > /dev/null

# A run that produced with acks=all against pinlog's metrics endpoint has the broker's commit figures in its series,
# and the native driver's has each Produce request's round trip (validate checks it against the publish latency), the
# rdkafka driver's librdkafka's own round trip windows.
# Every run has the machine's CPU (validate checks it holds the client's), and the broker's memory where its pid is
# known; a paced acks=all run has both latency floors.
server_figures_present() {
    python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
if r["produce"]["records"] > 0 and r["workload"]["producer"]["acks"] == "all":
    if not any(s.get("server_commit_max_ms") for s in r["series"]):
        sys.exit(f"{sys.argv[1]}: no second has server_commit_max_ms")
if r["driver"] == "native" and r["publish_latency_ms"]["count"] > 0 and not r.get("produce_request_rtt_ms"):
    sys.exit(f"{sys.argv[1]}: a native run with publish latency has no produce_request_rtt_ms")
if r["driver"] == "rdkafka" and r["publish_latency_ms"]["count"] > 0 and not (r.get("librdkafka") or {}).get("rtt_p99_ms"):
    sys.exit(f"{sys.argv[1]}: an rdkafka run with publish latency has no librdkafka.rtt_p99_ms")
if any(r["cpu"].get(k) is None for k in ("machine_cores", "other_process_cores", "steal_cores")):
    sys.exit(f"{sys.argv[1]}: cpu lacks machine_cores, other_process_cores or steal_cores")
if r["broker"].get("server_pid") and not (r.get("server_memory") or {}).get("peak_rss_bytes"):
    sys.exit(f"{sys.argv[1]}: the broker's pid is known but server_memory has no peak_rss_bytes")
# Where the disk floor ran (paced acks=all), the protocol floor ran too, with the same driver against the null broker.
if r.get("disk_floor") and not (r.get("protocol_floor") or {}).get("publish_latency_ms", {}).get("count"):
    sys.exit(f"{sys.argv[1]}: a run with a disk floor has no protocol_floor with publishes")
PY
}

failed=0 passed=0
for driver in $drivers; do
    for w in bench/workloads/*.toml; do
        name="$(basename "$w" .toml)"
        port="$(free_port)"
        start_broker "$work/data-$driver-$name" "$port" "$work/$driver-$name.broker.log"
        out="$work/$driver-$name.json"
        if "$bench_bin" run --workload "$w" --bootstrap "127.0.0.1:$port" --driver "$driver" --quiet \
            --server-pid "$BROKER_PID" --server-metrics "$BROKER_METRICS" --data-dir "$work" --duration-s "$seconds" --warmup-s 1 \
            --fill-bytes-max 20000000 --partitions-max 100 --out "$out" > "$work/$driver-$name.txt" 2>&1 \
            && "$bench_bin" validate "$out" && server_figures_present "$out"; then
            echo "smoke: $driver $name ok"
            passed=$((passed + 1))
        else
            echo "smoke: $driver $name FAILED" >&2
            tail -20 "$work/$driver-$name.txt" >&2 || true
            failed=$((failed + 1))
        fi
        stop_broker
        rm -rf "$work/data-$driver-$name"
    done
done
echo "bench smoke: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
