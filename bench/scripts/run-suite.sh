#!/usr/bin/env bash
# Runs workloads against a fresh broker each: starts pinlog (or a peer), runs one workload, stops the broker, files the
# result in bench/results/<stamp>/, then renders the plots and a comparison. The max-throughput result is the
# reference of the half-of-max latency workload.
#
# Usage: bench/scripts/run-suite.sh [--driver native|rdkafka] [--broker-name NAME]
#                                   [--peer 'CMD {data_dir} {port}' [--peer-port N]]
#                                   [--vs 'CMD {data_dir} {port}' [--vs-name NAME] [--vs-port N]]...
#                                   [--bootstrap HOST:PORT] [--duration-s N] [--warmup-s N] [WORKLOAD.toml...]
#   --peer       start this command instead of pinlog ({data_dir} and {port} are filled in), e.g. a Kafka or Redpanda
#   --vs         after each workload, run it again against this broker (same limits, same run) and write
#                <workload>.<vs-name>.json and <workload>-vs-<vs-name>.md with the ratios; give --vs once per peer
#                (each --vs-name and --vs-port belongs to the --vs before it) to put several peers beside pinlog
#   --peer-port, --vs-port  the port that broker listens on when it cannot be told one (a free port otherwise)
#   --bootstrap  use an already running broker instead of starting one (CPU of the server is then not measured)
#   Data dirs go under target/bench-data (on the disk; tmpfs is refused). Default workloads: all in bench/workloads.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$bench_repo"

driver=native broker_name=pinlog peer="" peer_port="" bootstrap="" extra=() workloads=()
vs_cmds=() vs_names=() vs_ports=()
while [ $# -gt 0 ]; do
    case "$1" in
        --driver) driver="$2"; shift 2 ;;
        --broker-name) broker_name="$2"; shift 2 ;;
        --peer) peer="$2"; shift 2 ;;
        --peer-port) peer_port="$2"; shift 2 ;;
        --vs) vs_cmds+=("$2"); vs_names+=("peer${#vs_cmds[@]}"); vs_ports+=(""); shift 2 ;;
        --vs-name|--vs-port)
            last=$((${#vs_cmds[@]} - 1))
            [ "$last" -ge 0 ] || { echo "bench: $1 belongs after a --vs" >&2; exit 2; }
            if [ "$1" = --vs-name ]; then vs_names[last]="$2"; else vs_ports[last]="$2"; fi
            shift 2 ;;
        --bootstrap) bootstrap="$2"; shift 2 ;;
        --duration-s|--warmup-s|--fill-bytes-max|--partitions-max) extra+=("$1" "$2"); shift 2 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
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
if [ "${#vs_cmds[@]}" -gt 0 ] && [ -n "$bootstrap" ]; then
    echo "bench: --vs needs brokers the script starts, not --bootstrap" >&2
    exit 2
fi

if [ -z "$peer" ] && [ -z "$bootstrap" ]; then
    cargo build --release -q -p pinlog --bin pinlog
fi
cargo build --release -q -p pinlog-bench
bench_bin="$bench_repo/target/release/pinlog-bench"

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out_dir="bench/results/$stamp-$broker_name-$driver"
for vs_name in "${vs_names[@]}"; do out_dir="$out_dir-vs-$vs_name"; done
data_root="$bench_repo/target/bench-data/$stamp"
mkdir -p "$out_dir" "$data_root"
check_disk "$data_root"
trap 'stop_broker' EXIT

"$bench_bin" limits --data-dir "$data_root"

# run_workload WORKLOAD NAME BROKER_CMD PORT OUT_JSON REFERENCE_JSON: one workload on a fresh broker and data dir.
# BROKER_CMD empty means pinlog; PORT empty means a free one; REFERENCE_JSON (may be empty) is the same broker's
# max-throughput result.
run_workload() {
    local w="$1" name="$2" cmd="$3" port="$4" out="$5" ref="$6" data_dir="$data_root/$2" target status=0
    local pid_args=() ref_args=() window_args=()
    [ -n "$ref" ] && [ -f "$ref" ] && ref_args=(--reference "$ref")
    if [ -z "$bootstrap" ]; then
        [ -n "$port" ] || port="$(free_port)"
        start_broker "$data_dir" "$port" "${out%.json}.broker.log" "$cmd"
        target="127.0.0.1:$port"
        pid_args=(--server-pid "$BROKER_PID" ${BROKER_METRICS:+--server-metrics "$BROKER_METRICS"})
    else
        target="$bootstrap"
        mkdir -p "$data_dir"
        # The broker's data is not on this data dir: its free space says nothing about the run's.
        window_args=(--keep-window)
    fi
    "$bench_bin" run --workload "$w" --bootstrap "$target" --driver "$driver" --broker-name "$name" \
        "${pid_args[@]}" "${window_args[@]}" --data-dir "$data_root" --out "$out" "${ref_args[@]}" "${extra[@]}" \
        || status=$?
    [ -z "$bootstrap" ] && stop_broker
    rm -rf "$data_dir"
    if [ "$status" -ne 0 ]; then
        echo "bench: $(basename "$w" .toml) on $name exited $status (result kept if written)" >&2
    fi
}

results=()
for w in "${workloads[@]}"; do
    name="$(basename "$w" .toml)"
    echo "=== $name ($broker_name, $driver driver)"
    run_workload "$w" "$broker_name" "$peer" "$peer_port" "$out_dir/$name.json" "$out_dir/max-throughput-1k.json"
    [ -f "$out_dir/$name.json" ] && results+=("$out_dir/$name.json")
    side_by_side=("$out_dir/$name.json")
    for i in "${!vs_cmds[@]}"; do
        vs_name="${vs_names[i]}"
        echo "=== $name ($vs_name, $driver driver)"
        run_workload "$w" "$vs_name" "${vs_cmds[i]}" "${vs_ports[i]}" "$out_dir/$name.$vs_name.json" \
            "$out_dir/max-throughput-1k.$vs_name.json"
        if [ -f "$out_dir/$name.json" ] && [ -f "$out_dir/$name.$vs_name.json" ]; then
            "$bench_bin" compare "$out_dir/$name.json" "$out_dir/$name.$vs_name.json" \
                --out "$out_dir/$name-vs-$vs_name" > /dev/null
            side_by_side+=("$out_dir/$name.$vs_name.json")
        fi
    done
    # With several peers, one table holds them all, each against pinlog.
    if [ "${#side_by_side[@]}" -ge 3 ]; then
        "$bench_bin" compare "${side_by_side[@]}" --out "$out_dir/$name-vs-peers" > /dev/null
    fi
done
if [ "${#results[@]}" -ge 2 ]; then
    "$bench_bin" compare "${results[@]}" --out "$out_dir/compare" > /dev/null
fi
rm -rf "$data_root"
echo "results in $out_dir"
