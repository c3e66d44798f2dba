"""``portable -H [USER@]HOST VERB ...`` and ``portable -M CONTAINER VERB ...``.

:func:`portable.cli.main` hands every command line with ``-H``/``-M`` here (but ``--help``,
which is the same help everywhere). What happens, in order:

1. **Reach it.** A :class:`~portable.remote.transport.SshTransport` (the user's ``ssh``, config
   and keys; ``--no-ask-password``: ``BatchMode=yes``) or a
   :class:`~portable.remote.transport.MachineTransport`. One probe asks what is there:
   ``portable`` on the PATH (or ``$PORTABLE_REMOTE_COMMAND``, a name or path there), a running
   systemd, ``systemd-stdio-bridge``, ``systemd-portabled``.
2. **Ship local images.** For ``attach``, ``reattach`` and ``inspect``, an image argument that
   is a path (it has a ``/``, as portablectl decides) and exists here, and every such
   ``--extension``, is shipped to the remote's ``/var/lib/portables/NAME`` by content hash
   (:mod:`portable.remote.ship`) and replaced by that path. For ``detach`` and ``is-attached``
   such a path names the shipped copy (nothing is copied). Other arguments go as they are, so a
   path that exists only there is the remote's.
3. **Run the verb there.** With ``portable`` there, it runs with the same arguments (its
   plugins and profiles apply; output and JSON pass through unchanged, its error lines get the
   remote's name). With only systemd, the verb is done through systemd-portabled's D-Bus API
   over ``systemd-stdio-bridge`` (:mod:`portable.remote.portabled`), as portablectl does; the
   verbs and options that need this project say so, the plugins' options too.

The verbs' options are read as the local command line reads them: each verb's command with the
options this host's plugins add to it (:func:`portable.cli.group.verb_command`), so an option's
value is never taken for an image path, and ``--no-plugins``/``--disable-plugin`` apply.

Every failure is one line that names the remote: it cannot be reached, the key is refused,
systemd or portabled is missing there, its disk is full while shipping.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from portable.cli import classify_option, normalize_args, registry_for
from portable.cli.group import fit_options, verb_command
from portable.errors import PortableError
from portable.remote.ship import REMOTE_DIR, local_image, ship
from portable.remote.transport import (
    SSH_FAILED,
    MachineTransport,
    SshTransport,
    Transport,
)

if TYPE_CHECKING:
    from portable.plugin.registry import Registry

__all__ = ["REMOTE_COMMAND_ENV", "Probe", "probe", "remote_target", "run_remote"]

REMOTE_COMMAND_ENV = "PORTABLE_REMOTE_COMMAND"
_TARGET_OPTIONS = {"-H": "host", "--host": "host", "-M": "machine", "--machine": "machine"}
SHIPPING_VERBS = frozenset({"attach", "reattach", "inspect"})
NAMING_VERBS = frozenset({"detach", "is-attached"})


def remote_target(args: Sequence[str]) -> tuple[str, str] | None:
    """``("host", "root@box1")``, ``("machine", "foo")``, or None: what ``-H``/``-M`` among
    the root group's options names. None also with ``-h``/``--help``: help is local."""
    if "-h" in args or "--help" in args:
        return None
    norm, verb_at = normalize_args(args)
    if verb_at is None and any(classify_option(a) is None for a in norm if a.startswith("-")):
        return None  # something unknown before the verb: click says what
    group = norm if verb_at is None else norm[:verb_at]
    return _split_group(group)[0]


def _split_group(group: Sequence[str]) -> tuple[tuple[str, str] | None, list[str]]:
    """The -H/-M target among group options, and the other group options."""
    target: tuple[str, str] | None = None
    others: list[str] = []
    i = 0
    while i < len(group):
        arg = group[i]
        kind, value, take = None, None, 1
        if arg in _TARGET_OPTIONS and i + 1 < len(group):
            kind, value, take = _TARGET_OPTIONS[arg], group[i + 1], 2
        elif arg.startswith(("--host=", "--machine=")):
            name, value = arg.split("=", 1)
            kind = _TARGET_OPTIONS[name]
        elif arg[:2] in ("-H", "-M") and len(arg) > 2:
            kind, value = _TARGET_OPTIONS[arg[:2]], arg[2:]
        if kind is not None and value is not None:
            if target is not None and target != (kind, value):
                raise PortableError("give one -H/--host or -M/--machine, not several")
            target = (kind, value)
        else:
            others.extend(group[i : i + take])
        i += take
    return target, others


@dataclass(frozen=True)
class Probe:
    """What the remote has."""

    portable: str  # the path of its portable command, "" if none
    systemd: bool  # systemd runs there (/run/systemd/system)
    bridge: bool  # systemd-stdio-bridge is installed
    portabled: bool  # systemd-portabled is installed


def probe(transport: Transport) -> Probe:
    command = os.environ.get(REMOTE_COMMAND_ENV) or "portable"
    script = (
        f'echo "portable=$(command -v {shlex.quote(command)} 2>/dev/null)"\n'
        "[ -d /run/systemd/system ] && echo systemd=yes\n"
        'echo "bridge=$(command -v systemd-stdio-bridge 2>/dev/null)"\n'
        "for d in /usr/lib/systemd /lib/systemd; do\n"
        '  [ -x "$d/systemd-portabled" ] && { echo portabled=yes; break; }\n'
        "done\n"
        "exit 0\n"
    )
    proc = transport.run(script, timeout=120)
    if proc.returncode != 0:
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        raise transport.error(f"cannot run a shell there: {lines[-1] if lines else 'failed'}")
    facts = dict(
        line.split("=", 1)
        for line in proc.stdout.decode(errors="replace").splitlines()
        if "=" in line
    )
    return Probe(
        portable=facts.get("portable", ""),
        systemd=facts.get("systemd") == "yes",
        bridge=bool(facts.get("bridge")),
        portabled=facts.get("portabled") == "yes",
    )


def _registry(group: Sequence[str]) -> Registry:
    """This host's plugins, as the root group's options ``group`` (-H/-M taken out) select
    them: their options are read here, whatever the remote has."""
    disabled: list[str] = []
    for i, arg in enumerate(group):
        if arg == "--disable-plugin" and i + 1 < len(group):
            disabled.append(group[i + 1])
        elif arg.startswith("--disable-plugin="):
            disabled.append(arg.split("=", 1)[1])
    return registry_for(Path("/"), no_plugins="--no-plugins" in group, disabled=disabled)


def _verb_command(verb: str, group: Sequence[str]) -> click.Command:
    command = verb_command(verb, lambda: _registry(group))
    if command is None:
        raise PortableError(f"No such command '{verb}' (see 'portable --help')")
    return command


def _options_of(command: click.Command) -> dict[str, bool]:
    """Every option spelling of a click command -> whether it takes a value."""
    takes: dict[str, bool] = {}
    for param in command.params:
        if isinstance(param, click.Option):
            for opt in (*param.opts, *param.secondary_opts):
                takes[opt] = not (param.is_flag or param.count)
    return takes


def _image_slots(command: click.Command, rest: list[str]) -> list[tuple[int, str]]:
    """Where ``rest`` names images by path: ``(index, "arg"|"eq")``; ``eq`` is
    ``--extension=PATH`` (the path after the ``=``)."""
    takes = _options_of(command)
    slots: list[tuple[int, str]] = []
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg == "--":
            slots += [(j, "arg") for j in range(i + 1, len(rest)) if "/" in rest[j]]
            break
        if arg.startswith("--extension="):
            slots.append((i, "eq"))
        elif arg == "--extension" and i + 1 < len(rest):
            slots.append((i + 1, "arg"))
            i += 1
        elif arg.startswith("-") and arg != "-":
            if takes.get(arg) and "=" not in arg:
                i += 1  # its value
        elif "/" in arg:
            slots.append((i, "arg"))  # an image by path (a unit prefix never has a '/')
        i += 1
    return slots


def _rewrite(
    transport: Transport, verb: str, rest: list[str], slots: list[tuple[int, str]]
) -> list[str]:
    """Ship (or name the shipped copy of) each local image path; the remote's paths instead."""
    out = list(rest)
    for index, form in slots:
        path = out[index].split("=", 1)[1] if form == "eq" else out[index]
        if not os.path.lexists(path):
            continue  # not here: a path on the remote
        if verb in SHIPPING_VERBS:
            remote = ship(transport, local_image(path)).remote_path
        elif verb in NAMING_VERBS:
            remote = f"{REMOTE_DIR}/{os.path.basename(os.path.realpath(path))}"
        else:
            continue
        out[index] = f"--extension={remote}" if form == "eq" else remote
    return out


def run_remote(args: Sequence[str]) -> int:
    """Run a ``portable -H/-M ...`` command line; see the module docstring."""
    norm, verb_at = normalize_args(args)
    if verb_at is None:
        group, verb, rest = norm, "list", []
    else:
        group, verb, rest = norm[:verb_at], norm[verb_at], norm[verb_at + 1 :]
    target, others = _split_group(group)
    if target is None:
        raise PortableError("-H/--host or -M/--machine needs a value")
    batch = "--no-ask-password" in rest
    rest = [a for a in rest if a != "--no-ask-password"]
    kind, name = target
    transport: Transport = (
        SshTransport(name, batch=batch) if kind == "host" else MachineTransport(name)
    )
    command = _verb_command(verb, others)
    if verb == "help":
        raise PortableError("'portable help' is the same everywhere: run it without -H/-M")
    transport.open()
    try:
        return _run_on(transport, verb, command, rest, others)
    finally:
        transport.close()


def _run_on(
    transport: Transport, verb: str, command: click.Command, rest: list[str], others: list[str]
) -> int:
    facts = probe(transport)
    if not facts.systemd:
        raise transport.error("systemd is not running there (portable services need it)")
    if not facts.portable and not facts.bridge:
        raise transport.error(
            "neither portable nor systemd-stdio-bridge is installed there (install portable, "
            "or systemd, there)"
        )
    rest = _rewrite(transport, verb, rest, _image_slots(command, rest))
    if facts.portable:
        return _run_portable(transport, facts.portable, [*others, verb, *rest])
    if not facts.portabled:
        raise transport.error(
            "systemd-portabled is not installed there (Debian: the systemd-container package)"
        )
    # here: only a remote with systemd alone takes this path (jeepney, the verbs' output: ~40 ms)
    from portable.remote.portabled import run_verb

    return run_verb(transport, verb, command, fit_options(command, rest), others)


def _run_portable(transport: Transport, command: str, argv: list[str]) -> int:
    """``portable ARGV`` there: stdout as it comes, stderr with the remote's name in errors."""
    proc = transport.popen(
        f"exec {shlex.quote(command)} {shlex.join(argv)}",
        # Nothing reads stdin: without this ssh would eat the caller's (``while read h``).
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    prefix = b"portable: error: "
    label = transport.label.encode()
    lines: list[bytes] = []
    for line in proc.stderr:
        lines.append(line)
        if line.startswith(prefix) and not line[len(prefix) :].startswith(label + b": "):
            line = prefix + label + b": " + line[len(prefix) :]
        sys.stderr.buffer.write(line)
        sys.stderr.flush()
    status = proc.wait()
    reason = transport.failure(status, b"".join(lines))
    if reason is not None and status == SSH_FAILED:
        raise transport.error(reason)
    return status
