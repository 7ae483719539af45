#!/usr/bin/env bash
# Installs what the bench suite needs on a fresh Debian machine, idempotently, as root (or via sudo):
# cmake and curl headers (rdkafka's `cmake-build` compiles the vendored librdkafka), fio (disk limits), iperf3 (loopback limits).
# Only Debian's package registry is used. Safe to run again: it skips what is already there.
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

need_pkgs=()
command -v cmake >/dev/null 2>&1 || need_pkgs+=(cmake)
command -v fio >/dev/null 2>&1 || need_pkgs+=(fio)
command -v iperf3 >/dev/null 2>&1 || need_pkgs+=(iperf3)
command -v pkg-config >/dev/null 2>&1 || need_pkgs+=(pkg-config)
command -v c++ >/dev/null 2>&1 || need_pkgs+=(g++)
[ -f /usr/include/zlib.h ] || need_pkgs+=(zlib1g-dev)
# Headers only: librdkafka 2.12's rdkafka_conf.c includes <curl/curl.h> under an `#ifdef` of a macro that its CMake
# config always defines (to 0), so the vendored build needs the header even with curl off; nothing links libcurl.
[ -f /usr/include/x86_64-linux-gnu/curl/curl.h ] || [ -f /usr/include/curl/curl.h ] || need_pkgs+=(libcurl4-openssl-dev)
command -v python3 >/dev/null 2>&1 || need_pkgs+=(python3)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    echo "bench install-deps: apt-get install ${need_pkgs[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}"
fi
for tool in cmake fio iperf3; do
    command -v "$tool" >/dev/null || { echo "bench install-deps: $tool missing" >&2; exit 1; }
done
echo "bench install-deps: ok (cmake $(cmake --version | head -1 | awk '{print $3}'), $(fio --version), iperf3 $(iperf3 --version | head -1 | awk '{print $2}'))"
