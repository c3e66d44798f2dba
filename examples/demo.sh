#!/usr/bin/env bash
# The demo: installs what is needed (idempotent), then runs examples/demo.py, which boots a
# throwaway systemd and attaches the example image to it. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh
exec .venv/bin/python examples/demo.py
