# Shared by run-suite.sh and smoke.sh: start a broker in a fresh data dir on the disk, wait for its port, stop it.
# A broker is either pinlog (default) or a peer given as a command line in which {data_dir} and {port} are replaced.

bench_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# A free TCP port on loopback.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Refuses tmpfs: O_DIRECT and fdatasync are not real there, so figures would lie.
check_disk() {
    local fs
    fs="$(stat -f -c %T "$1")"
    if [ "$fs" = "tmpfs" ] || [ "$fs" = "ramfs" ]; then
        echo "bench: $1 is on $fs; use a directory on a real disk" >&2
        exit 2
    fi
}

# start_broker DATA_DIR PORT LOG [PEER_CMD]: sets BROKER_PID, waits (bounded) until the port accepts connections.
# pinlog also serves its metrics; BROKER_METRICS is that endpoint (host:port), empty for a peer.
start_broker() {
    local data_dir="$1" port="$2" log="$3" peer="${4:-}"
    mkdir -p "$data_dir"
    check_disk "$data_dir"
    # A fixed port (a peer that cannot be told one) may still be held by something else; its answer would pass for
    # this broker's.
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "bench: port $port already accepts connections before the broker starts" >&2
        exit 1
    fi
    if [ -n "$peer" ]; then
        local cmd="${peer//\{data_dir\}/$data_dir}"
        cmd="${cmd//\{port\}/$port}"
        BROKER_METRICS=
        bash -c "exec $cmd" >"$log" 2>&1 &
    else
        BROKER_METRICS="127.0.0.1:$(free_port)"
        "$bench_repo/target/release/pinlog" serve --data-dir "$data_dir" \
            --listen "127.0.0.1:$port" --advertise "127.0.0.1:$port" --metrics-listen "$BROKER_METRICS" >"$log" 2>&1 &
    fi
    BROKER_PID=$!
    for _ in $(seq 1 300); do
        if ! kill -0 "$BROKER_PID" 2>/dev/null; then
            echo "bench: broker exited at start; log $log:" >&2
            tail -20 "$log" >&2
            exit 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "bench: broker not listening on $port after 30 s" >&2
    kill "$BROKER_PID" 2>/dev/null || true
    exit 1
}

# stop_broker: SIGTERM, then SIGKILL after 20 s.
stop_broker() {
    [ -n "${BROKER_PID:-}" ] || return 0
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    for _ in $(seq 1 200); do
        kill -0 "$BROKER_PID" 2>/dev/null || { wait "$BROKER_PID" 2>/dev/null || true; BROKER_PID=; return 0; }
        sleep 0.1
    done
    kill -KILL "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=
}
