"""Architectures as systemd names them (``x86-64``, ``arm64``, ...): the host's, and the table
that extension-release ``ARCHITECTURE=`` and versioned file names (``foo_1.2_x86-64.raw``) use."""

from __future__ import annotations

import os

__all__ = ["ARCHITECTURES", "host_architecture", "local_architectures"]

# systemd's architecture_table, every name it knows.
ARCHITECTURES = frozenset(
    [
        "arm64",
        "arm64-be",
        "arm",
        "arm-be",
        "alpha",
        "arc",
        "arc-be",
        "cris",
        "x86-64",
        "x86",
        "ia64",
        "loongarch64",
        "m68k",
        "mips64-le",
        "mips64",
        "mips-le",
        "mips",
        "nios2",
        "parisc64",
        "parisc",
        "ppc64-le",
        "ppc64",
        "ppc",
        "ppc-le",
        "riscv32",
        "riscv64",
        "s390x",
        "s390",
        "sh64",
        "sh",
        "sparc64",
        "sparc",
        "tilegx",
    ]
)

# uname -m -> systemd's architecture name (as in extension-release ARCHITECTURE=)
_UNAME_ARCH = {
    "x86_64": "x86-64",
    "i386": "x86",
    "i486": "x86",
    "i586": "x86",
    "i686": "x86",
    "aarch64": "arm64",
    "aarch64_be": "arm64-be",
    "ppc64le": "ppc64-le",
    "ppc64": "ppc64",
    "ppc": "ppc",
    "s390x": "s390x",
    "s390": "s390",
    "riscv64": "riscv64",
    "riscv32": "riscv32",
    "loongarch64": "loongarch64",
    "ia64": "ia64",
    "alpha": "alpha",
    "parisc": "parisc",
    "parisc64": "parisc64",
    "mips": "mips",
    "mips64": "mips64",
    "tilegx": "tilegx",
    "arc": "arc",
}


def host_architecture() -> str:
    """The host's architecture as systemd names it (``x86-64``, ``arm64``, ...)."""
    machine = os.uname().machine  # platform.machine()'s answer, without importing platform
    if machine.startswith("arm") and machine not in _UNAME_ARCH:
        return "arm"
    return _UNAME_ARCH.get(machine, machine)


# What such a host also runs (systemd's ARCHITECTURE_SECONDARY), in order of preference.
_SECONDARY = {
    "x86-64": "x86",
    "ppc64": "ppc",
    "ppc64-le": "ppc-le",
    "s390x": "s390",
    "arm64": "arm",
}


def local_architectures() -> tuple[str, ...]:
    """The host's architecture, then the one it also runs, if any."""
    native = host_architecture()
    return (native, _SECONDARY[native]) if native in _SECONDARY else (native,)
