#!/usr/bin/env bash
# Runs workloads against a fresh broker each: starts pinlog (or a peer), runs one workload, stops the broker, files the
# result in bench/results/<stamp>/, then renders the plots and a comparison. The max-throughput result is the
# reference of the half-of-max latency workload.
#
# Usage: bench/scripts/run-suite.sh [--driver native|rdkafka] [--broker-name NAME] [--peer 'CMD {data_dir} {port}']
#                                   [--bootstrap HOST:PORT] [--duration-s N] [--warmup-s N] [WORKLOAD.toml...]
#   --peer       start this command instead of pinlog ({data_dir} and {port} are filled in), e.g. a Kafka or Redpanda
#   --bootstrap  use an already running broker instead of starting one (CPU of the server is then not measured)
#   Data dirs go under target/bench-data (on the disk; tmpfs is refused). Default workloads: all in bench/workloads.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$bench_repo"

driver=native broker_name=pinlog peer="" bootstrap="" extra=() workloads=()
while [ $# -gt 0 ]; do
    case "$1" in
        --driver) driver="$2"; shift 2 ;;
        --broker-name) broker_name="$2"; shift 2 ;;
        --peer) peer="$2"; shift 2 ;;
        --bootstrap) bootstrap="$2"; shift 2 ;;
        --duration-s|--warmup-s|--fill-bytes-max|--partitions-max) extra+=("$1" "$2"); shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) workloads+=("$1"); shift ;;
    esac
done
if [ "${#workloads[@]}" -eq 0 ]; then
    # max-throughput first: it is the reference of tail-latency-half-max.
    workloads=(bench/workloads/max-throughput-1k.toml)
    for w in bench/workloads/*.toml; do
        [ "$w" = bench/workloads/max-throughput-1k.toml ] || workloads+=("$w")
    done
fi
[ -n "$peer" ] && [ "$broker_name" = pinlog ] && broker_name=peer

if [ -z "$peer" ] && [ -z "$bootstrap" ]; then
    cargo build --release -q -p pinlog --bin pinlog
fi
cargo build --release -q -p pinlog-bench
bench_bin="$bench_repo/target/release/pinlog-bench"

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out_dir="bench/results/$stamp-$broker_name-$driver"
data_root="$bench_repo/target/bench-data/$stamp"
mkdir -p "$out_dir" "$data_root"
check_disk "$data_root"
trap 'stop_broker' EXIT

"$bench_bin" limits --data-dir "$data_root"

reference=()
results=()
for w in "${workloads[@]}"; do
    name="$(basename "$w" .toml)"
    echo "=== $name ($broker_name, $driver driver)"
    data_dir="$data_root/$name"
    pid_args=()
    if [ -z "$bootstrap" ]; then
        port="$(free_port)"
        start_broker "$data_dir" "$port" "$out_dir/$name.broker.log" "$peer"
        target="127.0.0.1:$port"
        pid_args=(--server-pid "$BROKER_PID")
    else
        target="$bootstrap"
        mkdir -p "$data_dir"
    fi
    status=0
    "$bench_bin" run --workload "$w" --bootstrap "$target" --driver "$driver" --broker-name "$broker_name" \
        "${pid_args[@]}" --data-dir "$data_root" --out "$out_dir/$name.json" "${reference[@]}" "${extra[@]}" \
        || status=$?
    [ -z "$bootstrap" ] && stop_broker
    rm -rf "$data_dir"
    if [ "$status" -ne 0 ]; then
        echo "bench: $name exited $status (result kept if written)" >&2
    fi
    [ -f "$out_dir/$name.json" ] && results+=("$out_dir/$name.json")
    if [ "$name" = max-throughput-1k ] && [ -f "$out_dir/$name.json" ]; then
        reference=(--reference "$out_dir/$name.json")
    fi
done
if [ "${#results[@]}" -ge 2 ]; then
    "$bench_bin" compare "${results[@]}" --out "$out_dir/compare" > /dev/null
fi
rm -rf "$data_root"
echo "results in $out_dir"
