#!/usr/bin/env bash
# Installs everything the demo and the tests need on a fresh Debian 12 or 13 machine,
# idempotently: system packages (a real systemd container host, image tools, a static busybox
# payload, mmdebstrap), a virtualenv in .venv and this package with its test extras, and the
# cached OS roots of the test boxes that are not this machine's own release
# (/var/cache/portable-services/rootfs, built once with mmdebstrap, ~30 s and 160-200 MB each).
# PORTABLE_TEST_BOXES selects the boxes (default: debian-12,debian-13). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(systemd-container squashfs-tools erofs-utils busybox-static dbus iproute2 mmdebstrap
    openssh-client openssh-server)
# Debian 13 split systemd-repart (GPT test images) out of the systemd package.
if [ "$(cut -d. -f1 /etc/debian_version 2>/dev/null)" -ge 13 ] 2>/dev/null; then
    packages+=(systemd-repart)
fi
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    # The test fleet (portable.testing.fleet) runs sshd inside its boxes, which boot this
    # machine's /usr: the package is needed here, its server is not. Debian starts and enables
    # it on install; where no policy-rc.d says otherwise, one forbids that for this install.
    policy=/usr/sbin/policy-rc.d
    made_policy=
    if [[ " ${missing[*]} " == *" openssh-server "* && ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
        trap 'rm -f "$policy"' EXIT
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    if [[ " ${missing[*]} " == *" openssh-server "* ]]; then
        # Debian's switch that keeps sshd off at every boot too (ssh.service's condition);
        # only when we installed it: an sshd the machine already had is left alone.
        touch /etc/ssh/sshd_not_to_be_run
    fi
    if [ -n "$made_policy" ]; then
        rm -f "$policy"
        trap - EXIT
    fi
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

# Prints "DISTRO PATH" per box; builds only a root whose recipe is not cached yet.
.venv/bin/python -m portable.testing.rootfs | sed 's/^/setup: test box /'
