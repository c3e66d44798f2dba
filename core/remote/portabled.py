"""The verbs on a remote that has only systemd: systemd-portabled's D-Bus API, over ssh.

As portablectl does for ``-H``: the remote's ``systemd-stdio-bridge`` is the far end of a
socket pair (ssh's stdin and stdout), where :class:`portable.systemd.bus.Connection`
authenticates as sd-bus's client does for it (``ANONYMOUS``), and every verb is calls to
``org.freedesktop.portable1`` (attach, detach, state, images) and ``org.freedesktop.systemd1``
(reload, enable, start/stop). The output is our local verbs' (the same tables, change lines and
states); what only this project does (plugins and the options they add, our own profiles,
exposure scores, ``security``, ``verify`` ...) needs ``portable`` on the remote and says so
(:func:`run_verb`).
"""

from __future__ import annotations

import json
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import click
from jeepney import DBusAddress

from portable.cli.changes import (
    arrow,
    format_install_changes,
    image_matching_line,
    print_changes,
    queued_line,
)
from portable.cli.fast import render_json, render_table
from portable.cli.plugin_cli import given_plugin_options
from portable.cli.read_only import read_only_args
from portable.cli.set_limit import set_limit_args
from portable.errors import PortableError
from portable.images.listing import ImageInfo
from portable.plugin.types import Change
from portable.remote.transport import RemoteError, Transport
from portable.systemd.bus import CallError, Connection, strerror

__all__ = ["DBUS_VERBS", "PortabledSession", "run_verb"]

PORTABLE1 = DBusAddress(
    "/org/freedesktop/portable1", "org.freedesktop.portable1", "org.freedesktop.portable1.Manager"
)
SYSTEMD1 = DBusAddress(
    "/org/freedesktop/systemd1", "org.freedesktop.systemd1", "org.freedesktop.systemd1.Manager"
)
FLAG_RUNTIME = 1 << 0
FLAG_FORCE_ATTACH = 1 << 1
UNIT_FILE_RUNTIME = 1 << 0
UNIT_FILE_PORTABLE = 1 << 2
_UNKNOWN = 2**64 - 1  # sd-bus's "unset" for usage/limits
_JOB_TIMEOUT = 90.0
_CALL_TIMEOUT = 60.0  # a call's answer over ssh (the remote may be slow, or far)

#: the verbs that work through portabled alone
DBUS_VERBS = (
    "list",
    "is-attached",
    "attach",
    "detach",
    "reattach",
    "inspect",
    "remove",
    "read-only",
    "set-limit",
)
# The options only this project's engine has: refused here (as every option a plugin adds).
_OURS_ONLY = {
    "allow_settings": "--allow-setting",
    "strict_image": "--strict-image",
    "clean": "--clean",
    "force_reload": "--reload",
}


def _os_release(text: str) -> dict[str, str]:
    """KEY=VALUE lines, shell-unquoted (os-release(5))."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            try:
                words = shlex.split(value)
            except ValueError:
                words = [value]
            fields[key] = " ".join(words)
    return fields


def _changes(raw: Sequence[tuple[str, str, str]]) -> list[Change]:
    """portabled's (and PID 1's) change lists, ``(type, path, source)`` each."""
    return [Change(type=kind, path=path, source=source) for kind, path, source in raw]


def _err(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


class PortabledSession:
    """One bridge connection to a remote's system bus, and the verbs on it."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        # The bridge's (and ssh's) complaints, for the one-line error if it dies.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.proc = transport.popen(
                "exec systemd-stdio-bridge", stdin=theirs, stdout=theirs, stderr=self._stderr
            )
        except BaseException:
            ours.close()
            self._stderr.close()
            raise
        finally:
            theirs.close()
        self._systemd: int | None = None
        try:
            self.conn = Connection.over(
                ours, peer_to_peer=False, timeout=_CALL_TIMEOUT, anonymous=True
            )
            self.conn.hello(_CALL_TIMEOUT)
        except (OSError, ValueError) as e:  # ValueError: a message jeepney can't parse
            raise self._closed(e) from None

    def close(self) -> None:
        self.conn.close()  # the bridge sees the end of its input and exits
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()

    def _closed(self, exc: Exception) -> RemoteError:
        """The one-line error for a connection that failed or died (``exc``)."""
        proc = self.proc
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        self._stderr.seek(0)
        stderr = self._stderr.read()
        reason = self.transport.failure(proc.returncode, stderr)
        if reason is None:
            lines = [ln for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
            why = lines[-1] if lines else strerror(exc)
            reason = f"the connection to its system bus failed: {why}"
        return self.transport.error(reason)

    def _call(
        self, address: DBusAddress, method: str, sig: str | None, body: Sequence[Any]
    ) -> tuple[Any, ...]:
        """A method call; a D-Bus error raises CallError, a dead connection the one line."""
        try:
            return self.conn.call(
                address.object_path,
                address.interface or "",
                method,
                sig,
                tuple(body),
                timeout=_CALL_TIMEOUT,
                destination=address.bus_name,
            )
        except (OSError, ValueError) as e:
            raise self._closed(e) from None

    def _prop(self, address: DBusAddress, interface: str, name: str) -> Any:
        """A property; a D-Bus error raises CallError, a dead connection the one line."""
        try:
            return self.conn.get_property(
                address.object_path,
                interface,
                name,
                timeout=_CALL_TIMEOUT,
                destination=address.bus_name,
            )
        except (OSError, ValueError) as e:
            raise self._closed(e) from None

    def call(self, address: DBusAddress, method: str, sig: str | None = None, *body: Any) -> Any:
        """A call whose errors become one line naming the remote."""
        try:
            return self._call(address, method, sig, body)
        except CallError as e:
            raise self.transport.error(e.message) from None

    def prop(self, address: DBusAddress, interface: str, name: str) -> Any:
        try:
            return self._prop(address, interface, name)
        except CallError as e:
            raise self.transport.error(e.message) from None

    @property
    def systemd(self) -> int:
        """The remote manager's systemd major version (252, 257 ...)."""
        if self._systemd is None:
            version = str(self.prop(SYSTEMD1, SYSTEMD1.interface or "", "Version"))
            match = re.match(r"\d+", version)
            self._systemd = int(match.group()) if match else 0
        return self._systemd

    # --- verbs ------------------------------------------------------------------------------

    def run(self, verb: str, params: dict[str, Any]) -> int:
        handler: Callable[[dict[str, Any]], int] = {
            "list": self.list_images,
            "is-attached": self.is_attached,
            "attach": self.attach,
            "detach": self.detach,
            "reattach": self.reattach,
            "inspect": self.inspect,
            "remove": self.remove,
            "read-only": self.read_only,
            "set-limit": self.set_limit,
        }[verb]
        return handler(params)

    def list_images(self, p: dict[str, Any]) -> int:
        (images,) = self.call(PORTABLE1, "ListImages")
        rows = []
        for name, kind, ro, crtime, mtime, usage, state, obj in images:
            image = DBusAddress(obj, PORTABLE1.bus_name, "org.freedesktop.portable1.Image")
            path = str(self.prop(image, "org.freedesktop.portable1.Image", "Path"))
            rows.append(
                ImageInfo(
                    name=name,
                    type=kind,
                    path=path,
                    read_only=bool(ro),
                    crtime=crtime,
                    mtime=mtime,
                    usage=None if usage == _UNKNOWN else usage,
                    state=state,
                    format_of=lambda: None,
                )
            )
        if p.get("as_json"):
            sys.stdout.write(render_json(rows))
        else:
            systemd = self.systemd if rows else 0
            sys.stdout.write(render_table(rows, legend=not p.get("no_legend"), systemd=systemd))
        return 0

    def _state(self, image: str, p: dict[str, Any]) -> str:
        extensions = list(p.get("extensions") or ())
        if extensions:
            (state,) = self.call(
                PORTABLE1, "GetImageStateWithExtensions", "sast", image, extensions, 0
            )
        else:
            (state,) = self.call(PORTABLE1, "GetImageState", "s", image)
        return str(state)

    def is_attached(self, p: dict[str, Any]) -> int:
        state = self._state(p["image"], p)
        if not p.get("quiet"):
            sys.stdout.write(f"{state}\n")
        return 0

    @staticmethod
    def _print_changes(changes: Sequence[tuple[str, str, str]], quiet: bool) -> None:
        print_changes(_changes(changes), quiet=quiet)

    def _matching(self, image: str, prefixes: Sequence[str], quiet: bool) -> None:
        if not quiet:
            _err(image_matching_line(image, prefixes, systemd=self.systemd))

    def _reload(self, p: dict[str, Any]) -> None:
        if not p.get("no_reload"):
            self.call(SYSTEMD1, "Reload")

    @staticmethod
    def _unit_files(changes: Sequence[tuple[str, str, str]]) -> list[str]:
        """The unit files an attach placed (not their drop-ins, not the image link)."""
        found = []
        for kind, path, _ in changes:
            _, sep, tail = path.partition("/system.attached/")
            if sep and kind in ("copy", "symlink") and "/" not in tail:
                found.append(path)
        return found

    def _enable(self, files: Sequence[str], runtime: bool, quiet: bool) -> None:
        flags = UNIT_FILE_PORTABLE | (UNIT_FILE_RUNTIME if runtime else 0)
        _, changes = self.call(SYSTEMD1, "EnableUnitFilesWithFlags", "ast", list(files), flags)
        self._print_install(changes, quiet)

    def _disable(self, names: Sequence[str], runtime: bool, quiet: bool) -> None:
        flags = UNIT_FILE_PORTABLE | (UNIT_FILE_RUNTIME if runtime else 0)
        (changes,) = self.call(SYSTEMD1, "DisableUnitFilesWithFlags", "ast", list(names), flags)
        self._print_install(changes, quiet)

    def _print_install(self, changes: Sequence[tuple[str, str, str]], quiet: bool) -> None:
        if not quiet:
            for line in format_install_changes(_changes(changes), arrow(), systemd=self.systemd):
                _err(line)

    def _jobs(self, method: str, units: Sequence[str], p: dict[str, Any]) -> bool:
        """Queue ``method`` (StartUnit ...) for each unit; wait unless --no-block; True if ok."""
        jobs = []
        for unit in units:
            (job,) = self.call(SYSTEMD1, method, "ss", unit, "replace")
            if not p.get("quiet"):
                _err(queued_line(job, method, unit))
            jobs.append((unit, job))
        if p.get("no_block"):
            return True
        ok = True
        deadline = time.monotonic() + _JOB_TIMEOUT
        for unit, job in jobs:
            address = DBusAddress(job, SYSTEMD1.bus_name, "org.freedesktop.systemd1.Job")
            while time.monotonic() < deadline:
                try:
                    self._prop(address, "org.freedesktop.systemd1.Job", "State")
                except CallError:
                    break  # the job is gone: done
                time.sleep(0.05)
            if method != "StopUnit":
                (path,) = self.call(SYSTEMD1, "LoadUnit", "s", unit)
                obj = DBusAddress(path, SYSTEMD1.bus_name, "org.freedesktop.systemd1.Unit")
                state = self.prop(obj, "org.freedesktop.systemd1.Unit", "ActiveState")
                if state not in ("active", "activating", "reloading"):
                    _err(
                        f"portable: error: {self.transport.label}: {unit} failed to start "
                        f"(see 'journalctl -u {unit}' there)"
                    )
                    ok = False
        return ok

    @staticmethod
    def _attach_args(p: dict[str, Any]) -> tuple[Any, ...]:
        """The arguments of ``AttachImageWithExtensions`` and ``ReattachImageWithExtensions``."""
        copy = p.get("copy_mode") or "auto"
        flags = (FLAG_RUNTIME if p.get("runtime") else 0) | (
            FLAG_FORCE_ATTACH if p.get("force") else 0
        )
        return (
            p["image"],
            list(p.get("extensions") or ()),
            list(p.get("prefixes") or ()),
            p.get("profile") or "default",
            "" if copy == "auto" else copy,
            flags,
        )

    def attach(self, p: dict[str, Any]) -> int:
        image, quiet = p["image"], bool(p.get("quiet"))
        prefixes = list(p.get("prefixes") or ())
        if not p.get("force") and self._state(image, p) != "detached":
            # As the local attach (portabled itself would refuse: "Unit file ... exists").
            self._matching(image, prefixes, quiet)
            if not quiet:
                _err(f"Image '{image}' is already attached.")
            return 0
        (changes,) = self.call(
            PORTABLE1, "AttachImageWithExtensions", "sasassst", *self._attach_args(p)
        )
        self._matching(image, prefixes, quiet)
        self._print_changes(changes, quiet)
        self._reload(p)
        return self._activate(self._unit_files(changes), p, restart=False)

    def _activate(self, files: Sequence[str], p: dict[str, Any], *, restart: bool) -> int:
        ok = True
        if p.get("enable"):
            self._enable(files, bool(p.get("runtime")), bool(p.get("quiet")))
        if p.get("now"):
            names = [f.rsplit("/", 1)[1] for f in files]
            ok = self._jobs("RestartUnit" if restart else "StartUnit", names, p)
        return 0 if ok else 1

    def _units_of(self, image: str, p: dict[str, Any]) -> list[str]:
        try:
            result = self._call(
                PORTABLE1,
                "GetImageMetadataWithExtensions",
                "sasast",
                (image, list(p.get("extensions") or ()), list(p.get("prefixes") or ()), 0),
            )
        except CallError:
            return []  # the image is gone: nothing to stop
        return sorted(result[3])

    def detach(self, p: dict[str, Any]) -> int:
        image, quiet = p["image"], bool(p.get("quiet"))
        runtime = bool(p.get("runtime"))
        ok = True
        if p.get("now") or p.get("enable"):
            self._matching(image, list(p.get("prefixes") or ()), quiet)
            units = self._units_of(image, p)
            if p.get("now"):  # stopped first, as the local detach does
                ok = self._jobs("StopUnit", units, p)
            if p.get("enable"):
                self._disable(units, runtime, quiet)
        flags = (FLAG_RUNTIME if runtime else 0) | (FLAG_FORCE_ATTACH if p.get("force") else 0)
        (changes,) = self.call(
            PORTABLE1,
            "DetachImageWithExtensions",
            "sast",
            image,
            list(p.get("extensions") or ()),
            flags,
        )
        self._print_changes(changes, quiet)
        self._reload(p)
        return 0 if ok else 1

    def reattach(self, p: dict[str, Any]) -> int:
        image, quiet = p["image"], bool(p.get("quiet"))
        prefixes = list(p.get("prefixes") or ())
        removed, updated = self.call(
            PORTABLE1, "ReattachImageWithExtensions", "sasassst", *self._attach_args(p)
        )
        self._matching(image, prefixes, quiet)
        self._print_changes(removed, quiet)
        self._print_changes(updated, quiet)
        self._reload(p)
        return self._activate(self._unit_files(updated), p, restart=True)

    def inspect(self, p: dict[str, Any]) -> int:
        image = p["image"]
        prefixes = list(p.get("prefixes") or ())
        path, os_release, _, units = self.call(
            PORTABLE1,
            "GetImageMetadataWithExtensions",
            "sasast",
            image,
            list(p.get("extensions") or ()),
            prefixes,
            0,
        )
        release = bytes(os_release).decode(errors="replace")
        texts = {name: bytes(data).decode(errors="replace") for name, data in units.items()}
        if p.get("as_json"):
            doc = {"image": path, "os_release": _os_release(release), "units": sorted(texts)}
            if p.get("cat"):
                doc["os_release_content"] = release
                doc["unit_files"] = texts
            sys.stdout.write(json.dumps(doc, indent=2) + "\n")
            return 0
        self._matching(image, prefixes, bool(p.get("quiet")))
        if p.get("cat"):
            parts = ["-- OS Release: --\n", release]
            for name in sorted(texts):
                parts += [f"\n-- Unit file: {name} --\n", texts[name]]
            sys.stdout.write("".join(parts))
            return 0
        fields = _os_release(release)
        lines = [
            "Image:",
            f"\t{path}",
            "Portable Service:",
            f"\t{fields.get('PORTABLE_PRETTY_NAME') or 'n/a'}",
            "Operating System:",
            f"\t{fields.get('PRETTY_NAME') or 'n/a'}",
            "Unit files:",
            *(f"\t{name}" for name in sorted(texts)),
        ]
        sys.stdout.write("\n".join(lines) + "\n")
        return 0

    def remove(self, p: dict[str, Any]) -> int:
        for image in p.get("images") or ():
            self.call(PORTABLE1, "RemoveImage", "s", image)
        return 0

    def read_only(self, p: dict[str, Any]) -> int:
        image, value = read_only_args(tuple(p.get("args") or ()))
        self.call(PORTABLE1, "MarkImageReadOnly", "sb", image, value)
        return 0

    def set_limit(self, p: dict[str, Any]) -> int:
        image, limit = set_limit_args(tuple(p.get("args") or ()))
        self.call(PORTABLE1, "SetImageLimit", "st", image, limit)
        return 0


def run_verb(
    transport: Transport, verb: str, command: click.Command, rest: list[str], others: list[str]
) -> int:
    """Run ``verb`` with its options ``rest`` (root group options: ``others``) through the
    remote's portabled; what needs portable there (other verbs, --root, our engine's options,
    every option a plugin adds) is refused in one line naming the option and the host."""
    if verb not in DBUS_VERBS:
        raise transport.error(
            f"'portable {verb}' needs portable installed there; it has only systemd "
            f"(through systemd-portabled: {', '.join(DBUS_VERBS)})"
        )
    if any(a == "--root" or a.startswith("--root=") for a in others):
        raise transport.error("--root needs portable installed there; it has only systemd")
    try:
        ctx = command.make_context(verb, list(rest), resilient_parsing=False)
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        raise PortableError(f"{e.format_message()} (see 'portable {verb} --help')") from None
    params = dict(ctx.params)
    given = given_plugin_options(ctx, params)
    if given:
        option = given[0][0].name
        raise transport.error(f"{option} needs portable installed there; it has only systemd")
    for key, option in _OURS_ONLY.items():
        if params.get(key) not in (None, False, (), ""):
            raise transport.error(f"{option} needs portable installed there; it has only systemd")
    if verb in ("attach", "detach") and any("/" in p for p in params.get("prefixes") or ()):
        raise transport.error(
            "several images in one call need portable installed there; it has only systemd"
        )
    session = PortabledSession(transport)
    try:
        return session.run(verb, params)
    finally:
        session.close()
