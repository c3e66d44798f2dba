"""What the collection's modules share: the ``portable`` library on the managed host.

The modules run on the managed host with the Python Ansible chose there
(``ansible_python_interpreter``); that Python must be able to ``import portable`` (the
portable-services package). :func:`require_portable` fails the task with one line saying so.
"""

from __future__ import annotations

import contextlib
import io
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:
    from portable.plugin.registry import Registry, get_registry
    from portable.systemd.host import Host
    from portable.systemd.manager import Manager
    from portable.systemd.version import detect as detect_systemd
except ImportError:
    HAS_PORTABLE = False
    IMPORT_ERROR: str | None = traceback.format_exc()
else:
    HAS_PORTABLE = True
    IMPORT_ERROR = None

WARNING_PREFIX = "portable: warning: "


def require_portable(module: Any) -> None:
    """Fail the task unless the ``portable`` library can be imported here."""
    if not HAS_PORTABLE:
        module.fail_json(
            msg=(
                f"the portable-services library ('import portable') is not available to "
                f"{sys.executable} on this host: install it for that Python, or point "
                "ansible_python_interpreter at a Python that has it (the virtualenv "
                "portable is installed in)"
            ),
            exception=IMPORT_ERROR,
        )


def open_host(root: str | None) -> tuple[Host, Registry, Manager | None]:
    """The host (``root``: an alternate root directory, files only), its plugin registry and,
    on the real host, its service manager (PID 1, over D-Bus)."""
    host = Host(Path(root).resolve()) if root else Host()
    registry = get_registry(root=host.root, load_entrypoints=True)
    manager = Manager.connect() if host.is_real else None
    # The profiles and drop-in formats follow the running systemd: asked once, first.
    detect_systemd(host, manager)
    return host, registry, manager


@contextlib.contextmanager
def warnings_to(module: Any) -> Iterator[None]:
    """The library's ``portable: warning: ...`` lines (stderr) become the task's warnings;
    anything else it writes to stderr is kept on stderr."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            yield
    finally:
        for line in captured.getvalue().splitlines():
            if line.startswith(WARNING_PREFIX):
                module.warn(line.removeprefix(WARNING_PREFIX))
            elif line.strip():
                sys.stderr.write(line + "\n")
