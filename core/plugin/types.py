"""Typed, frozen spec objects returned by the registration hooks.

Plugins construct these (keyword-only) and return them from ``portable_image_formats()`` and
``portable_profiles()``. Validation happens at construction so a plugin author sees a bad name
where it is made, not at attach time.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from portable.errors import PluginError
from portable.systemd.names import PORTABLE_UNIT_TYPES, has_control

if TYPE_CHECKING:
    from portable.plugin._attach_types import AttachOptions, ImageMetadata
    from portable.plugin._detach_types import DetachOptions
    from portable.plugin._profile_edits import FloorEdit, ProfileEdit

__all__ = [
    "CLI_OPTION_VERBS",
    "AttachOptions",
    "Change",
    "CliOption",
    "DetachOptions",
    "ExtraSetting",
    "Floor",
    "FloorEdit",
    "FloorRule",
    "Image",
    "ImageFormat",
    "ImageMetadata",
    "PluginOptions",
    "Profile",
    "ProfileDropin",
    "ProfileEdit",
    "UnitFile",
    "validate_plugin_name",
    "validate_profile_name",
]

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_OPTION_RE = re.compile(r"^--[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
# The verbs a plugin's option can be added to: those whose values reach the plugin's hooks
# (AttachOptions.plugin_options for attach and reattach, DetachOptions.plugin_options for detach).
CLI_OPTION_VERBS = ("attach", "reattach", "detach")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


def validate_plugin_name(kind: str, name: str) -> str:
    """Format names are lower-case identifiers: they appear in listings and JSON."""
    if not _NAME_RE.match(name) or len(name) > 64:
        raise PluginError(
            f"invalid {kind} name {name!r}: use lower-case letters, digits, '.', '_' or '-'"
        )
    return name


def validate_profile_name(name: str) -> str:
    """Profile names follow systemd's rule: a valid file name (no '/', not '.' or '..')."""
    if (
        not name
        or name in (".", "..")
        or "/" in name
        or "\0" in name
        or len(name.encode()) > 255
        or has_control(name)
    ):
        raise PluginError(f"invalid profile name {name!r}: must be a valid file name")
    return name


@dataclass(frozen=True, kw_only=True, slots=True)
class ProfileDropin:
    """What a profile adds for one unit type: the drop-in text, and where it lives if on disk.

    ``path`` is set when the drop-in exists as a file that attach may symlink to (systemd's
    ``10-profile.conf`` is a symlink to the profile file in the default copy mode). Profiles
    built in memory (TOML, Python) have ``path=None`` and are always copied.

    ``mode``: the permission bits of a copy (``10-profile.conf``). 0644 as portablectl copies
    its profiles; a profile read from a file that is not readable by everyone keeps that file's
    bits, so its copy is never more readable than the file.
    """

    text: str
    path: Path | None = None
    mode: int = 0o644


def _check_unit_types(unit_types: Iterable[str], what: str) -> None:
    for unit_type in unit_types:
        if unit_type not in PORTABLE_UNIT_TYPES:
            raise PluginError(
                f"{what}: unknown unit type {unit_type!r}"
                f" (expected one of {', '.join(PORTABLE_UNIT_TYPES)})"
            )


# How a FloorRule matches a value (see portable.security.floor, where each is evaluated).
FLOOR_MATCHES = (
    "any",  # any non-empty value
    "values",  # one of ``values`` (a word, compared without case)
    "prefix",  # a value starting with one of ``values``
    "exec-privileged",  # an Exec*= command line run with full privileges ("+", "!", "!!")
    "host-path",  # a path made on the host (a socket, a FIFO) not below /run/<image's name>
    "host-file",  # a host file other than /etc/default/<image's name> (or /etc/sysconfig/)
    "network-address",  # a socket address that is not a path or abstract (a port, an IP)
    "host-unit",  # names a unit the image does not provide, other than a target or slice
    "foreign-name",  # names a unit that is not the image's (not one of its names or prefixes)
)


@dataclass(frozen=True, kw_only=True, slots=True)
class FloorRule:
    """A setting a profile forbids in an image's own unit files (one row of a floor table).

    :param setting: the setting name (``ExecStart``); in ``unit_types`` only (all if empty).
    :param match: how a value is forbidden, one of :data:`FLOOR_MATCHES`.
    :param values: for ``values`` and ``prefix``.
    :param reason: why, as the refusal prints it ("overwrites a file on the host").
    """

    setting: str
    match: str = "any"
    values: tuple[str, ...] = ()
    reason: str
    unit_types: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.match not in FLOOR_MATCHES:
            raise PluginError(
                f"floor rule {self.setting}=: unknown match {self.match!r}"
                f" (expected one of {', '.join(FLOOR_MATCHES)})"
            )
        _check_unit_types(self.unit_types, f"floor rule {self.setting}=")


@dataclass(frozen=True, kw_only=True, slots=True)
class Floor:
    """What a profile promises that an image's unit files can't take back: its sandbox floor.

    :param rules: settings forbidden outright (:class:`FloorRule`).
    :param hold_profile: also refuse a unit setting that makes the service score worse, on a
        check the profile's own service drop-in sets, than the bare service with the profile
        (``CapabilityBoundingSet=CAP_SYS_ADMIN`` adds to a profile's list: systemd merges them;
        ``User=root`` with the profile's ``DynamicUser=yes`` runs as root).

    ``portable.security.floor`` holds the tables the built-in profiles use (``STANDARD``,
    ``NO_NETWORK``, ``NONE``); a profile with no floor of its own gets its base's (``extends``),
    else ``STANDARD``.
    """

    rules: tuple[FloorRule, ...] = ()
    hold_profile: bool = True


@dataclass(frozen=True, kw_only=True, slots=True)
class Profile:
    """A security profile: drop-in settings applied to each attached unit of a given type.

    :param name: what users pass to ``--profile``.
    :param description: one line for listings.
    :param dropins: unit type (``"service"``, ``"socket"``, ...) -> :class:`ProfileDropin`.
        Only unit types listed here get a ``10-profile.conf``.
    :param priority: resolves profiles of the same name: the highest wins, equal priorities
        are a conflict. Plugins use 0 (the default). Profiles found in systemd's own directories
        use 30 (``/etc``), 20 (``/run``), 10 (``/usr/local/lib``) so an admin can override a
        plugin's profile as systemd users expect, and -10 (``/usr/lib``, where systemd ships its
        copies of the built-in four).
    :param origin: where it comes from, for listings (a file, a directory, "built-in").
    :param extends: the name of a profile this one is based on; the registry resolves it into
        ``dropins`` by applying ``edits`` (unit type -> :class:`ProfileEdit`). Extending one's
        own name means the profile of that name it overrides (lower priority).
    :param floor: the settings an image's unit files may not use under this profile
        (:class:`Floor`); ``None``: the base profile's when it ``extends`` one,
        else ``portable.security.floor.STANDARD``. Only a profile that promises nothing
        (``trusted``) should give an empty one.
    :param floor_edit: with ``extends``: how this profile changes the floor it gets (its own
        ``floor``, else the base's); the registry resolves it into ``floor``
        (:class:`FloorEdit`).
    """

    name: str
    description: str
    dropins: Mapping[str, ProfileDropin]
    priority: int = 0
    origin: str = ""
    extends: str | None = None
    edits: Mapping[str, ProfileEdit] = field(default_factory=dict)
    floor: Floor | None = None
    floor_edit: FloorEdit | None = None

    def __post_init__(self) -> None:
        validate_profile_name(self.name)
        if self.floor_edit is not None and self.extends is None:
            # nothing would resolve it: the profile would silently keep the standard floor
            raise PluginError(f"profile {self.name!r}: floor_edit needs extends (or give floor)")
        _check_unit_types([*self.dropins, *self.edits], f"profile {self.name!r}")
        # Freeze the mappings too, so a registered profile can't change under the registry.
        object.__setattr__(self, "dropins", MappingProxyType(dict(self.dropins)))
        object.__setattr__(self, "edits", MappingProxyType(dict(self.edits)))

    def dropin_for(self, unit_type: str) -> ProfileDropin | None:
        return self.dropins.get(unit_type)


@dataclass(frozen=True, kw_only=True, slots=True)
class ImageFormat:
    """An image format: how to recognise an image, read its tree, and point systemd at it.

    :param name: format name (``"directory"``, ``"squashfs"``, a vendor's ``"tar"``).
    :param description: one line for listings.
    :param image_type: what systemd's ``list`` shows in its TYPE column for such an image
        (``"directory"``, ``"raw"``, ...).
    :param detect: ``detect(path)`` -> True if this format handles the (resolved, existing)
        path. Must be cheap and must not hang on FIFOs or devices: look at ``os.stat`` and at
        most a few header bytes. Returning False means "not mine"; so does raising (one
        format can't break detection for the others; ``--debug`` shows the exception, naming
        the plugin).
    :param open: ``open(path)`` returns a context manager yielding a directory on the host
        whose contents are the image's root tree (the path itself for directories, a private
        read-only mount for file systems). Everything it set up is released on exit, also on
        errors. Raises :class:`~portable.errors.BadImage` when the image is bad (a corrupt
        archive, a file system that won't mount): the message is shown as it is.
    :param root_setting: the unit setting that points the service at the image,
        ``"RootDirectory"`` or ``"RootImage"``.
    :param suffixes: file name suffixes stripped to form the image name (``(".raw",)``).
    :param name_lookup: may an image of this format be found by *name* in the search path?
        (``"foo"`` finds ``/var/lib/portables/foo`` for directories, ``foo.raw`` for raw files.)
    :param unpack: for images the service manager can't use as they are (an archive):
        ``unpack(image, destination)`` fills the empty directory ``destination`` with the
        image's tree. attach then unpacks the image into a cache directory
        (``/var/cache/portable-services/unpacked/...``) and points ``RootDirectory=`` there;
        detach removes it. Requires ``root_setting="RootDirectory"``. Raises
        :class:`~portable.errors.BadImage` when the image is bad, as ``open``.

    Anything but a :class:`~portable.errors.PortableError` raised by ``open`` or ``unpack`` is a
    bug of the plugin: reported as that plugin's error (``plugin 'x' (dist 1.0) failed in image
    format 'tar' open(): ValueError: ...``, exit 1, the traceback with ``--debug``), see
    :mod:`portable.plugin.hooks`. The registry hands out each format with its callbacks wrapped
    so (``registry.formats()``, ``image.format``): compare formats by ``name``.
    """

    name: str
    description: str
    image_type: str
    detect: Callable[[Path], bool]
    open: Callable[[Path], AbstractContextManager[Path]]
    root_setting: str = "RootDirectory"
    suffixes: tuple[str, ...] = ()
    name_lookup: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)
    unpack: Callable[[Path, Path], None] | None = None

    def __post_init__(self) -> None:
        validate_plugin_name("image format", self.name)
        if self.root_setting not in ("RootDirectory", "RootImage"):
            raise PluginError(
                f"image format {self.name!r}: root_setting must be RootDirectory or RootImage"
            )
        if self.unpack is not None and self.root_setting != "RootDirectory":
            raise PluginError(f"image format {self.name!r}: unpack needs RootDirectory")

    def image_name(self, filename: str) -> str:
        """The image's name (list NAME column): the file name minus this format's suffix."""
        for suffix in self.suffixes:
            if filename.endswith(suffix) and len(filename) > len(suffix):
                return filename[: -len(suffix)]
        return filename


# Not slots=True: ``CliOption[str](...)`` sets __orig_class__, which a frozen slotted dataclass
# answers with a TypeError on Python 3.11 (not the AttributeError typing expects).
@dataclass(frozen=True, kw_only=True)
class CliOption(Generic[T_co]):
    """An option a plugin adds to verbs of the command line (``portable_cli_options``).

    Its value reaches the plugin's own lifecycle hooks through ``options.plugin_options``
    (:class:`PluginOptions`): ``options.plugin_options.value(MY_OPTION)``.

    :param name: the long option, ``"--vendor-key"``: lower-case letters, digits and ``-``.
        Two plugins adding the same name is an error naming both; so is a name the verb has
        already.
    :param verbs: the verbs that take it, of :data:`CLI_OPTION_VERBS`: ``attach``,
        ``reattach`` (both give :class:`AttachOptions`), ``detach`` (:class:`DetachOptions`; the
        detach half of ``reattach`` gets reattach's values).
    :param help: what ``--help`` says about it.
    :param flag: a switch without a value: its value is True when given, else False.
    :param convert: turns the text given into the value (``float``, ``pathlib.Path``, a
        function of the plugin's), when the command line is read. A ``ValueError`` or
        :class:`~portable.errors.PortableError` it raises is a usage error naming the option
        (exit 2, as for any bad option); ``None``: the value is the text given.
    :param metavar: the value's placeholder in ``--help`` (``"CIDR"``, ``"N"``).
    :param default: the value when the option is not given (not converted).
    """

    name: str
    verbs: tuple[str, ...]
    help: str
    flag: bool = False
    convert: Callable[[str], T_co] | None = None
    metavar: str = "VALUE"
    default: T_co | None = None

    def __post_init__(self) -> None:
        if not _OPTION_RE.match(self.name) or len(self.name) > 64:
            raise PluginError(
                f"invalid option name {self.name!r}: use --name, with lower-case letters, "
                "digits and '-'"
            )
        if not self.verbs:
            raise PluginError(
                f"option {self.name}: no verbs (give some of {', '.join(CLI_OPTION_VERBS)})"
            )
        for verb in self.verbs:
            if verb not in CLI_OPTION_VERBS:
                raise PluginError(
                    f"option {self.name}: a plugin can't add options to {verb!r} "
                    f"(only to {', '.join(CLI_OPTION_VERBS)})"
                )
        if self.flag and (self.convert is not None or self.default is not None):
            raise PluginError(f"option {self.name}: a flag takes no convert or default")

    @property
    def dest(self) -> str:
        """The key of its value in :class:`PluginOptions`: ``--vendor-key`` -> ``vendor_key``."""
        return self.name[2:].replace("-", "_")


class PluginOptions(Mapping[str, Any]):
    """The values of plugins' options (:class:`CliOption`) that were given, by ``dest``.

    Read-only. Only the options given are in it (a flag: ``True``); :meth:`value` answers for
    any option, with its default when it was not given. A library caller passes a plain
    mapping: ``AttachOptions(plugin_options={"netns": True})``.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self._values = dict(values or {})

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"PluginOptions({self._values!r})"

    def __hash__(self) -> int:
        return hash(frozenset(self._values))

    def value(self, option: CliOption[T]) -> T | None:
        """The option's value (converted), else its default (a flag: False)."""
        if option.dest in self._values:
            return cast("T", self._values[option.dest])
        return cast("T", False) if option.flag else option.default

    def given(self, option: CliOption[Any]) -> bool:
        """Was the option given (a flag: turned on)?"""
        return option.dest in self._values


def _plugin_options(value: Mapping[str, Any]) -> PluginOptions:
    return value if isinstance(value, PluginOptions) else PluginOptions(value)


# --- objects the lifecycle hooks receive -------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Change:
    """One change on disk, as portabled reports it: ``(type, path, source)``.

    ``type`` is one of ``copy symlink write mkdir unlink``; ``source`` is "" when there is none.
    """

    type: str
    path: str
    source: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class ExtraSetting:
    """A setting a pre-attach hook adds to the attached units' ``20-portable.conf``.

    :param key: the setting name, e.g. ``"NetworkNamespacePath"``.
    :param value: its value.
    :param section: the unit file section, ``"Service"`` by default.
    :param units: unit names it applies to; empty means every attached unit that has
        ``section`` (for ``"Service"``: every ``.service`` unit).
    """

    key: str
    value: str
    section: str = "Service"
    units: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not re.match(r"^[A-Za-z][A-Za-z0-9]*$", self.key):
            raise PluginError(f"invalid setting name {self.key!r}")
        if "\n" in self.value or "\r" in self.value:
            raise PluginError(f"setting {self.key}=: value must be a single line")


@dataclass(frozen=True, kw_only=True, slots=True)
class Image:
    """An image as the user named it, resolved.

    :param path: the image path as the service manager sees it: ``searchdir/NAME`` for an image
        found by name (symlink not resolved, as portabled does), the canonical path otherwise.
        With ``--root``, relative to that root.
    :param host_path: where this process reads it (``path`` under ``--root``).
    :param name: the image name (``list``'s NAME): file name minus the format's suffix.
    :param format: the :class:`ImageFormat` that recognised it.
    """

    path: str
    host_path: Path
    name: str
    format: ImageFormat

    @property
    def filename(self) -> str:
        """Last path component, suffix included: what markers and ``PORTABLE=`` use."""
        return self.path.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True, kw_only=True, slots=True)
class UnitFile:
    """A unit file found in an image.

    :param name: unit name, e.g. ``foo.service``.
    :param source: the directory entry it was found as, inside the image, e.g.
        ``/usr/lib/systemd/system/foo.service`` (unit directory symlinks resolved).
    :param resolved: the file its bytes came from, inside the image: ``source`` with a symlink
        at the entry itself resolved, confined to the image root.
    :param data: its bytes.
    """

    name: str
    source: str
    resolved: str
    data: bytes

    @property
    def type(self) -> str:
        """``service``, ``socket``, ``target``, ``timer`` or ``path``."""
        return self.name.rsplit(".", 1)[-1]


# Spec types only some commands use are built when first named here, in the module that
# defines them (portable.plugin._profile_edits says why; they are this module's all the same).
_LATER = {
    "AttachOptions": "portable.plugin._attach_types",
    "DetachOptions": "portable.plugin._detach_types",
    "FloorEdit": "portable.plugin._profile_edits",
    "ImageMetadata": "portable.plugin._attach_types",
    "ProfileEdit": "portable.plugin._profile_edits",
}


def __getattr__(name: str) -> Any:
    if name not in _LATER:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LATER[name]), name)
    globals()[name] = value
    return value
