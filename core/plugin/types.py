"""Typed, frozen spec objects returned by the registration hooks.

Plugins construct these (keyword-only) and return them from ``portable_image_formats()`` and
``portable_profiles()``. Validation happens at construction so a plugin author sees a bad name
where it is made, not at attach time.

The types only some commands use (the profiles', the attach's, the detach's) are written in
``portable.plugin._profile_types``, ``_attach_types`` and ``_detach_types`` and built when first
named here (a dataclass costs ~0.4 ms to build): they are this module's all the same.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from portable.errors import PluginError
from portable.systemd.names import PORTABLE_UNIT_TYPES, has_control

if TYPE_CHECKING:
    from portable.plugin._attach_types import AttachOptions, ExtraSetting, ImageMetadata, UnitFile
    from portable.plugin._detach_types import DetachOptions
    from portable.plugin._profile_types import (
        Floor,
        FloorEdit,
        FloorRule,
        Profile,
        ProfileDropin,
        ProfileEdit,
    )

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


# Spec types only some commands use are built when first named here, in the module that
# defines them (portable.plugin._profile_types says why; they are this module's all the same).
# All of that module's types land here at once, so that typing.get_type_hints() finds the ones
# a type names (Profile's ProfileEdit...) as it did when they were defined here.
_LATER = {
    "AttachOptions": "portable.plugin._attach_types",
    "DetachOptions": "portable.plugin._detach_types",
    "ExtraSetting": "portable.plugin._attach_types",
    "Floor": "portable.plugin._profile_types",
    "FloorEdit": "portable.plugin._profile_types",
    "FloorRule": "portable.plugin._profile_types",
    "ImageMetadata": "portable.plugin._attach_types",
    "Profile": "portable.plugin._profile_types",
    "ProfileDropin": "portable.plugin._profile_types",
    "ProfileEdit": "portable.plugin._profile_types",
    "UnitFile": "portable.plugin._attach_types",
}


def __getattr__(name: str) -> Any:
    if name not in _LATER:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(_LATER[name])
    for later in module.__all__:
        globals()[later] = getattr(module, later)
    return globals()[name]
