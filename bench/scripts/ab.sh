#!/usr/bin/env bash
# Before/after on a noisy machine: runs one workload against broker A and broker B alternately (A, B, A, B, ...), each
# round on a fresh data dir, then prints every round's figures and the median of each figure with the B/A ratio.
# Alternating in one run keeps both brokers under the same background noise; quote the medians.
#
# Usage: bench/scripts/ab.sh [--a 'CMD {data_dir} {port}'] [--b 'CMD {data_dir} {port}'] [--rounds N]
#                            [--driver native|rdkafka] [--duration-s N] [--warmup-s N] [--reference RESULT.json]
#                            [--b-workload WORKLOAD.toml] WORKLOAD.toml
#   --a, --b   broker command lines ({data_dir} and {port} are filled in); omitted means this tree's pinlog, e.g.
#              --a 'target/base/pinlog serve --data-dir {data_dir} --listen 127.0.0.1:{port} --advertise 127.0.0.1:{port}'
#   --rounds   rounds per broker (default 3)
#   --b-workload  B runs this workload file instead (the same broker on both sides then A/Bs a client setting)
#   Results go to target/bench-ab/<stamp>/ (not bench/results: these are experiments, not the published report).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$bench_repo"

a_cmd="" b_cmd="" rounds=3 driver=native extra=() workload="" b_workload=""
while [ $# -gt 0 ]; do
    case "$1" in
        --a) a_cmd="$2"; shift 2 ;;
        --b) b_cmd="$2"; shift 2 ;;
        --b-workload) b_workload="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --driver) driver="$2"; shift 2 ;;
        --duration-s|--warmup-s|--reference|--fill-bytes-max|--partitions-max) extra+=("$1" "$2"); shift 2 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) workload="$1"; shift ;;
    esac
done
[ -n "$workload" ] || { echo "ab: give one workload file" >&2; exit 2; }
b_workload="${b_workload:-$workload}"

# Two commands: `--bin pinlog` would apply to both packages and leave pinlog-bench unbuilt (stale).
cargo build --release -q -p pinlog --bin pinlog
cargo build --release -q -p pinlog-bench
bench_bin="$bench_repo/target/release/pinlog-bench"
out_dir="target/bench-ab/$(date -u +%Y%m%dT%H%M%SZ)"
data_root="$bench_repo/target/bench-data/ab-$$"
mkdir -p "$out_dir" "$data_root"
check_disk "$data_root"
trap 'stop_broker; rm -rf "$data_root"' EXIT
"$bench_bin" limits --data-dir "$data_root" > /dev/null

for round in $(seq 1 "$rounds"); do
    for side in a b; do
        cmd="$a_cmd" side_workload="$workload"
        [ "$side" = b ] && cmd="$b_cmd" side_workload="$b_workload"
        port="$(free_port)"
        data_dir="$data_root/$side-$round"
        start_broker "$data_dir" "$port" "$out_dir/$side-$round.broker.log" "$cmd"
        status=0
        "$bench_bin" run --workload "$side_workload" --bootstrap "127.0.0.1:$port" --driver "$driver" \
            --broker-name "$side" --server-pid "$BROKER_PID" --data-dir "$data_root" \
            --out "$out_dir/$side-$round.json" "${extra[@]}" > "$out_dir/$side-$round.txt" || status=$?
        stop_broker
        rm -rf "$data_dir"
        [ "$status" -eq 0 ] || echo "ab: round $round of $side exited $status (see $out_dir/$side-$round.txt)" >&2
    done
done
python3 "$bench_repo/bench/scripts/ab_medians.py" "$out_dir"
