#!/usr/bin/env bash
# Installs everything the demo and the tests need on a fresh Debian 12 machine, idempotently:
# system packages (a real systemd container host, image tools, a static busybox payload), a
# virtualenv in .venv and this package with its test extras. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(systemd-container squashfs-tools erofs-utils busybox-static dbus iproute2)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
