"""Prints the rounds of an ab.sh run and the median of each figure per broker, with the B/A ratio of the medians.

Usage: python3 bench/scripts/ab_medians.py target/bench-ab/<stamp>
"""

import json
import statistics
import sys
from pathlib import Path

# (label, path into the result JSON[, scale])
FIGURES = [
    ("produce MB/s", ("produce", "mb_s")),
    ("consume MB/s", ("consume", "mb_s")),
    ("publish p50 ms", ("publish_latency_ms", "p50")),
    ("publish p99 ms", ("publish_latency_ms", "p99")),
    ("round trip p99 ms", ("produce_request_rtt_ms", "p99")),
    ("librdkafka round trip p99 ms", ("librdkafka", "rtt_p99_ms", "median_ms")),
    ("librdkafka queue p99 ms", ("librdkafka", "queue_p99_ms", "median_ms")),
    ("e2e p99 ms", ("e2e_latency_ms", "p99")),
    ("disk alone p99", ("disk_floor", "latency_ms", "p99")),
    ("protocol floor p99", ("protocol_floor", "publish_latency_ms", "p99")),
    ("server cores", ("cpu", "server_cores")),
    ("client cores", ("cpu", "client_cores")),
    # Something else sharing the machine in a round makes it no comparison.
    ("other processes' cores", ("cpu", "other_process_cores")),
    ("steal cores", ("cpu", "steal_cores")),
    ("server peak resident MB", ("server_memory", "peak_rss_bytes"), 1e-6),
]


def figure(result, path, scale=1.0):
    value = result
    for key in path:
        if not isinstance(value, dict) or value.get(key) is None:
            return None
        value = value[key]
    return float(value) * scale


def main(out_dir):
    sides = {}
    for path in sorted(Path(out_dir).glob("*-*.json")):
        side = path.stem.split("-")[0]
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            # A round that failed (say, a full disk) leaves an empty or partial file; its .txt says why.
            txt = path.with_suffix(".txt")
            print(f"ab_medians: round {path.stem} left out, its result is unreadable ({e}); see {txt}", file=sys.stderr)
            continue
        sides.setdefault(side, []).append(result)
    if set(sides) != {"a", "b"}:
        sys.exit(f"ab_medians: expected results of brokers a and b in {out_dir}, found {sorted(sides)}")
    print(f"{'figure':<16} {'side':<4} {'rounds':<40} {'median':>10}")
    medians = {}
    for label, *where in FIGURES:
        for side in ("a", "b"):
            values = [v for v in (figure(r, *where) for r in sides[side]) if v is not None]
            if not values:
                continue
            medians[(label, side)] = statistics.median(values)
            rounds = " ".join(f"{v:.2f}" for v in values)
            print(f"{label:<16} {side:<4} {rounds:<40} {medians[(label, side)]:>10.2f}")
    print()
    for label, *_ in FIGURES:
        a, b = medians.get((label, "a")), medians.get((label, "b"))
        if a and b is not None:
            print(f"{label:<16} B/A = {b / a:.2f}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
