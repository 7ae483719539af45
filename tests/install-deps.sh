#!/usr/bin/env bash
# Installs everything the end-to-end suite needs, idempotently, on a fresh Debian machine as root:
# kcat from Debian's packages and the Python clients (tests/requirements.txt) into tests/.venv.
# Only the package registries are used. Safe to run again: it skips what is already there.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
apt_install() {
    if [ "$apt_updated" -eq 0 ]; then
        as_root apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@"
}

need_pkgs=()
command -v kcat >/dev/null 2>&1 || need_pkgs+=(kcat)
# kafkajs (tests/e2e/js) needs node and npm.
command -v node >/dev/null 2>&1 || need_pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || need_pkgs+=(npm)
command -v python3 >/dev/null 2>&1 || need_pkgs+=(python3)
if command -v python3 >/dev/null 2>&1; then
    # Debian's python3 needs python3-venv (ensurepip) to create a venv.
    python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_pkgs+=(python3-venv)
else
    need_pkgs+=(python3-venv)
fi
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    echo "install-deps: apt-get install ${need_pkgs[*]}"
    apt_install "${need_pkgs[@]}"
fi

if [ ! -x "$venv/bin/python" ]; then
    echo "install-deps: creating $venv"
    python3 -m venv "$venv"
fi
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "install-deps: pip install -r tests/requirements.txt"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$here/requirements.txt"
    echo "$want" > "$stamp"
fi
js="$here/e2e/js"
if [ ! -d "$js/node_modules/kafkajs" ]; then
    echo "install-deps: npm ci (kafkajs) in tests/e2e/js"
    (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
fi
"$venv/bin/python" -c 'import confluent_kafka, kafka, aiokafka, pytest, pytest_timeout, crc32c' \
    || { echo "install-deps: python packages failed to import" >&2; exit 1; }
command -v kcat >/dev/null || { echo "install-deps: kcat missing" >&2; exit 1; }
echo "install-deps: ok ($("$venv/bin/python" --version), kcat $(dpkg-query -W -f='${Version}' kcat 2>/dev/null || echo installed))"
