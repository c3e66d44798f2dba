"""``python crash_run.py N ARGS...``: ``portable ARGS``, SIGKILLed just before the N-th step of
its transaction (:mod:`helpers.crash`), for crash tests that run ``portable`` in a box as a
process of its own (the checkout is bound at the same path there)."""

from __future__ import annotations

import sys
from pathlib import Path

# tests/ instead of tests/helpers/ (the script's own directory) on the path, for ``helpers``
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from helpers.crash import kill_at_step  # noqa: E402
from portable.cli import main  # noqa: E402

if __name__ == "__main__":
    kill_at_step(int(sys.argv[1]))
    main(sys.argv[2:])
