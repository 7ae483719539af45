#!/usr/bin/env bash
# Deleting a topic under load. Fills a topic at max rate for --fill-s seconds (about 5 GB in 4 s here), then runs
# tail-latency-half-max on a second topic (the fill is its max-rate reference) and deletes the filled topic 10 s
# into the measured window. Prints the run's publish p99 and its worst second: what the deletion costs the
# partitions that stay.
#
#   bench/scripts/delete-under-load.sh [--broker 'CMD with {data_dir} and {port}'] [--fill-s N] [--out DIR]
#
# The broker is this tree's pinlog unless --broker gives another command line (an older build, to compare). The
# topic is deleted with confluent-kafka's AdminClient from tests/.venv (the README's test command installs it), or
# from $PYTHON.
set -euo pipefail
# shellcheck source=bench/scripts/lib.sh
source "$(dirname "$0")/lib.sh"

broker="" fill_s=4 out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --broker) broker="$2"; shift 2 ;;
        --fill-s) fill_s="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "delete-under-load: unknown argument $1" >&2; exit 2 ;;
    esac
done
cd "$bench_repo"
python="${PYTHON:-$bench_repo/tests/.venv/bin/python}"
"$python" -c "import confluent_kafka" 2>/dev/null || {
    echo "delete-under-load: $python has no confluent_kafka (run the README's test command, or set PYTHON)" >&2
    exit 2
}
[ -z "$broker" ] && cargo build --release -q -p pinlog --bin pinlog
cargo build --release -q -p pinlog-bench
bench_bin="$bench_repo/target/release/pinlog-bench"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="${out:-target/bench-delete/$stamp}"
data_dir="$bench_repo/target/bench-data/delete-$stamp"
mkdir -p "$out"
trap 'stop_broker; rm -rf "$data_dir"' EXIT
port="$(free_port)"
start_broker "$data_dir" "$port" "$out/broker.log" "$broker"

"$bench_bin" run --workload bench/workloads/max-throughput-1k.toml --bootstrap "127.0.0.1:$port" --driver native \
    --duration-s "$fill_s" --warmup-s 0 --data-dir "$data_dir" --out "$out/fill.json" > "$out/fill.txt" 2>&1
topic="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["topic"])' "$out/fill.json")"
echo "filled $(du -sh "$data_dir" | cut -f1) into $topic"

# 2 s of warm-up, then 10 s into the window.
(
    sleep 12
    "$python" - "127.0.0.1:$port" "$topic" <<'PY'
import sys
from confluent_kafka.admin import AdminClient
admin = AdminClient({"bootstrap.servers": sys.argv[1]})  # kept alive until the futures resolve
for future in admin.delete_topics([sys.argv[2]]).values():
    future.result(timeout=30)
print(f"deleted {sys.argv[2]}")
PY
) &
deleter=$!
"$bench_bin" run --workload bench/workloads/tail-latency-half-max.toml --reference "$out/fill.json" \
    --bootstrap "127.0.0.1:$port" --driver native --server-pid "$BROKER_PID" \
    ${BROKER_METRICS:+--server-metrics "$BROKER_METRICS"} --duration-s 20 --warmup-s 2 --no-disk-floor --no-protocol-floor \
    --data-dir "$data_dir" --out "$out/tail.json" > "$out/tail.txt" 2>&1
wait "$deleter"
python3 - "$out/tail.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
per_second = [s.get("publish_p99_ms") or 0.0 for s in r["series"]]
print(f"publish p99 {r['publish_latency_ms']['p99']:.2f} ms, worst second p99 {max(per_second):.1f} ms, "
      f"seconds over 20 ms: {sum(p > 20 for p in per_second)}; per second: {[round(p, 1) for p in per_second]}")
PY
echo "results in $out"
