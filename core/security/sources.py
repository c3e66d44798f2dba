"""Where the exposure score's input comes from: a unit file and the drop-ins systemd would apply
to it (:class:`UnitSource`), read into the settings the score grades (:func:`load_settings`).

A source is a unit on a host (:func:`host_unit`: the unit file found in the unit search path,
or given, and every drop-in from every drop-in directory that applies to its name), what
attaching an image would write (:func:`attach_sources`: its unit files with the
``10-profile.conf`` and ``20-portable.conf`` attach writes, plus the drop-ins already on the
host), an image's unit file with a profile (:func:`unit_settings`), or a bare service with a
profile (:func:`profile_source`). Files are read as text,
undecodable bytes kept (``surrogateescape``), at most 4 MiB each.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NamedTuple

from portable.engine.dropins import MARKER_FILE, PROFILE_FILE, render_portable_dropin
from portable.errors import PortableError
from portable.plugin.types import ExtraSetting, Image, Profile, UnitFile
from portable.security.settings import ServiceSettings, settings_from
from portable.systemd.host import ATTACHED_DIR, UNIT_SEARCH_PATH, Host
from portable.systemd.unitfile import parse_unit_text

__all__ = [
    "BARE_UNIT",
    "UnitSource",
    "attach_sources",
    "dropin_dirs",
    "find_unit_file",
    "host_dropins",
    "host_unit",
    "load_settings",
    "merge_dropins",
    "profile_source",
    "unit_settings",
]

BARE_UNIT = "[Service]\nExecStart=/usr/bin/sleep infinity\n"
"""The unit the reference values are measured on: a service with no settings of its own."""

_MAX_FILE = 4 * 1024 * 1024


# A NamedTuple: made at import in a fifth of the time of a frozen dataclass (~0.08 ms, not 0.45).
class UnitSource(NamedTuple):
    """A unit file and the drop-ins that apply to it, in the order systemd applies them.

    :param name: the unit name (``foo.service``): ``DynamicUser=`` derives the user from it.
    :param text: the unit file's text.
    :param dropins: ``(file name or path, text)`` pairs, applied in this order.
    :param path: where the unit file is (a host path, or the image's path and the unit's path
        in it), "" if it is not a file.
    """

    name: str
    text: str
    dropins: tuple[tuple[str, str], ...] = ()
    path: str = ""

    @property
    def files(self) -> tuple[str, ...]:
        """The unit file and the drop-ins, in the order they apply."""
        return (self.path, *(p for p, _ in self.dropins))


def load_settings(source: UnitSource, *, systemd: int | None = None) -> ServiceSettings:
    """The effective settings of a unit: its file, then its drop-ins, then the implications,
    as systemd ``systemd`` reads them (:func:`~portable.security.tables.rules_for`; ``None``:
    this machine's)."""
    assignments = [
        *parse_unit_text(source.text, source.name),
        *(a for name, text in source.dropins for a in parse_unit_text(text, name)),
    ]
    return settings_from(source.name, assignments, systemd=systemd)


def unit_settings(
    unit: UnitFile, profile: Profile | None = None, *, systemd: int | None = None
) -> ServiceSettings:
    """The effective settings of an image's unit file with ``profile``'s drop-in for its type
    (``10-profile.conf``) applied, as systemd ``systemd`` reads them (``None``: this machine's),
    implications included: ``unit_settings(unit, profile).private_network``."""
    dropin = profile.dropin_for(unit.type) if profile is not None else None
    source = UnitSource(
        name=unit.name,
        text=unit.data.decode("utf-8", "surrogateescape"),
        dropins=((PROFILE_FILE, dropin.text),) if dropin is not None else (),
    )
    return load_settings(source, systemd=systemd)


def profile_source(
    profile: Profile | None, *, root_image: bool = False, root_directory: bool = False
) -> UnitSource:
    """A bare service (:data:`BARE_UNIT`) with ``profile``'s service drop-in (``None``: no
    profile); with ``root_image`` also ``RootImage=`` (what attaching a raw image adds), with
    ``root_directory`` ``RootDirectory=`` (a directory image)."""
    dropins: list[tuple[str, str]] = []
    if profile is not None:
        dropin = profile.dropin_for("service")
        if dropin is not None:
            dropins.append((PROFILE_FILE, dropin.text))
    root = ""
    if root_image:
        root += "RootImage=/var/lib/portables/image.raw\n"
    if root_directory:
        root += "RootDirectory=/var/lib/portables/image\n"
    if root:
        dropins.append((MARKER_FILE, "[Service]\n" + root))
    return UnitSource(name="portable.service", text=BARE_UNIT, dropins=tuple(dropins))


def dropin_dirs(unit: str) -> list[str]:
    """The drop-in directory names that apply to ``unit``, most specific first:
    ``foo-bar@x.service.d``, ``foo-bar@.service.d``, ``foo-bar-.service.d``, ``foo-.service.d``,
    ``service.d``."""
    name, _, suffix = unit.rpartition(".")
    names = [unit]
    if "@" in name:
        prefix, _, instance = name.partition("@")
        if instance:
            names.append(f"{prefix}@.{suffix}")
        name = prefix
    parts = name.split("-")
    for i in range(len(parts) - 1, 0, -1):
        names.append("-".join(parts[:i]) + f"-.{suffix}")
    names.append(suffix)
    return [f"{n}.d" for n in names]


def merge_dropins(found: Iterable[tuple[str, str, str]]) -> list[tuple[str, str]]:
    """``(file name, path, text)`` in priority order -> ``(path, text)`` as systemd applies
    them: the first file of each name wins, then sorted by file name."""
    chosen: dict[str, tuple[str, str]] = {}
    for filename, path, text in found:
        chosen.setdefault(filename, (path, text))
    return [chosen[name] for name in sorted(chosen)]


def _read_text(path: str | os.PathLike[str]) -> str:
    with open(path, "rb") as f:
        return f.read(_MAX_FILE).decode("utf-8", "surrogateescape")


def host_dropins(
    local: Callable[[str], str | os.PathLike[str]],
    unit: str,
    search_path: Sequence[str],
    *,
    replace: Mapping[str, Mapping[str, str]] | None = None,
) -> list[tuple[str, str]]:
    """The drop-ins systemd would apply to ``unit`` from the unit directories
    ``search_path`` (host paths; ``local`` maps one to where this process reads it).

    ``replace`` pretends files are (or are not) there: host directory -> {file name: text};
    a text of ``""`` hides a file. Used for what an attach would write.
    """
    found: list[tuple[str, str, str]] = []
    replace = replace or {}
    for directory in search_path:
        for sub in dropin_dirs(unit):
            host_dir = f"{directory}/{sub}"
            overlay = replace.get(host_dir, {})
            names: set[str] = set(overlay)
            with contextlib.suppress(OSError):
                names |= {n for n in os.listdir(local(host_dir)) if n.endswith(".conf")}
            for name in sorted(names):
                if name in overlay:
                    if overlay[name]:
                        found.append((name, f"{host_dir}/{name}", overlay[name]))
                    continue
                try:
                    found.append(
                        (name, f"{host_dir}/{name}", _read_text(local(f"{host_dir}/{name}")))
                    )
                except OSError:
                    continue
    return merge_dropins(found)


def attach_sources(
    image: Image,
    units: Sequence[UnitFile],
    profile: Profile | None,
    *,
    host: Host | None = None,
    runtime: bool = False,
    extra: Sequence[ExtraSetting] = (),
) -> list[UnitSource]:
    """``units`` of ``image`` as attaching it with ``profile`` would leave them: each unit file
    with the ``10-profile.conf`` and ``20-portable.conf`` attach writes (``extra``: what hooks
    add to the latter), plus the drop-ins already on ``host`` for that unit name (``None``:
    none; the drop-in's os-release line is this machine's then)."""
    the_host = host if host is not None else Host()
    where = ATTACHED_DIR[runtime]
    out = []
    for unit in units:
        overlay: dict[str, str] = {}
        dropin = profile.dropin_for(unit.type) if profile is not None else None
        if dropin is not None:
            overlay[PROFILE_FILE] = dropin.text
        overlay[MARKER_FILE] = render_portable_dropin(
            image, unit, host_os_release=the_host.os_release_path(), extra=extra
        ).decode("utf-8", "surrogateescape")
        replace = {f"{where}/{unit.name}.d": overlay}
        if host is None:
            dropins = [(f"{where}/{unit.name}.d/{n}", t) for n, t in sorted(overlay.items())]
        else:
            dropins = host_dropins(the_host.path, unit.name, UNIT_SEARCH_PATH, replace=replace)
        out.append(
            UnitSource(
                name=unit.name,
                text=unit.data.decode("utf-8", "surrogateescape"),
                dropins=tuple(dropins),
                path=f"{image.path.rstrip('/')}{unit.source}",
            )
        )
    return out


def find_unit_file(unit: str, *, host: Host) -> str:
    """The unit file of ``unit`` systemd would load: the first in the unit search path (a host
    path).

    :raises PortableError: there is none.
    """
    for directory in UNIT_SEARCH_PATH:
        if os.path.isfile(host.path(f"{directory}/{unit}")):
            return f"{directory}/{unit}"
    raise PortableError(f"Unit {unit} not found on the host.")


def host_unit(
    unit: str, *, host: Host, profile: Profile | None = None, fragment: str | None = None
) -> UnitSource:
    """A unit on the host: its unit file (:func:`find_unit_file`, or ``fragment``) and every
    drop-in systemd would apply. With ``profile``, the unit's ``10-profile.conf`` (if
    attached) is replaced by that profile's drop-in, or added.

    :raises PortableError: no such unit, or its file can't be read.
    """
    if fragment is None:
        fragment = find_unit_file(unit, host=host)
    try:
        text = _read_text(host.path(fragment))
    except OSError as exc:
        raise PortableError(f"Cannot read unit file {fragment}: {exc.strerror}") from None
    directory = fragment.rsplit("/", 1)[0] or "/"
    search = list(UNIT_SEARCH_PATH)
    if directory not in search:
        search.insert(0, directory)
    replace: dict[str, dict[str, str]] = {}
    if profile is not None:
        dropin = profile.dropin_for(unit.rsplit(".", 1)[-1])
        if dropin is not None:
            replace[f"{directory}/{unit}.d"] = {PROFILE_FILE: dropin.text}
    dropins = host_dropins(host.path, unit, search, replace=replace)
    return UnitSource(name=unit, text=text, dropins=tuple(dropins), path=fragment)
