"""The plugin registry: one pluggy manager for built-in and third-party plugins.

Built-ins (``BUILTIN_PLUGINS``) are registered first, then the ``portable`` entry-point group.
Both go through the same manager and the same collection code, so a built-in profile and a
``pip install``-ed one are indistinguishable to the engine.

Switches (also in ``portable --help``):

* ``PORTABLE_SERVICES_NO_PLUGINS=1`` / ``--no-plugins``: load built-ins only.
* ``PORTABLE_SERVICES_DISABLE_PLUGINS=a,b`` / ``--disable-plugin``: skip these entry points.
* ``PORTABLE_SERVICES_STRICT_PLUGINS=1``: a plugin that fails to load is fatal, not a warning.

(The variable names avoid ``PORTABLE_*``, which systemd uses for os-release keys and journal
fields.)
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import MethodType, ModuleType
from typing import TYPE_CHECKING, Any, cast

import pluggy

from portable.errors import (
    PluginConflict,
    PluginError,
    PortableError,
    UnknownImageFormat,
    UnknownProfile,
    warn,
)
from portable.plugin import entrypoints, hookspecs
from portable.plugin.hooks import Hooks, PluginRecord, Registered
from portable.systemd.host import Host

if TYPE_CHECKING:
    from portable.plugin.types import ImageFormat, Profile

__all__ = [
    "BUILTIN_PLUGINS",
    "ENTRY_POINT_GROUP",
    "PluginRecord",
    "Registered",
    "Registry",
    "get_registry",
    "reset_registry",
]

ENTRY_POINT_GROUP = "portable"
BUILTIN_PLUGINS: tuple[str, ...] = (
    "portable.plugins.image_formats.directory",
    "portable.plugins.profiles.builtin",
    "portable.plugins.profiles.systemd_dirs",
    "portable.plugins.profiles.toml_files",
    "portable.plugins.image_formats.squashfs",
    "portable.plugins.image_formats.filesystem",
    "portable.plugins.image_formats.gpt",
    "portable.plugins.hooks.max_exposure",
    "portable.plugins.hooks.netns",
)

ENV_NO_PLUGINS = "PORTABLE_SERVICES_NO_PLUGINS"
ENV_DISABLE = "PORTABLE_SERVICES_DISABLE_PLUGINS"
ENV_STRICT = "PORTABLE_SERVICES_STRICT_PLUGINS"


class _PluginManager(pluggy.PluginManager):
    """pluggy's manager, finding the hook implementations of a module plugin (every built-in
    one, most third-party ones) in the module's namespace: pluggy looks each name of a module
    up with ``inspect.getattr_static`` (~270 names for the built-ins: ~0.7 ms of every command).
    The answer is the same: a module's own functions, with their marker; the rest (a class or
    an instance as plugin, a method-like module attribute, a dunder name) is pluggy's."""

    def parse_hookimpl_opts(self, plugin: object, name: str) -> pluggy.HookimplOpts | None:
        if isinstance(plugin, ModuleType) and not name.startswith("__"):
            value = vars(plugin).get(name)
            if inspect.isfunction(value):
                marker = self.project_name + "_impl"
                opts = getattr(value, marker, None)
                if opts is None and (func := getattr(value, "__func__", None)) is not None:
                    opts = getattr(func, marker, None)
                return cast("pluggy.HookimplOpts", opts) if isinstance(opts, dict) else None
            if not isinstance(value, staticmethod | classmethod | MethodType):
                return None  # not a function: never a hook implementation
        return super().parse_hookimpl_opts(plugin, name)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "yes", "true", "on")


# A plain class, not a dataclass (~0.3 ms to build at import, on every command): nothing
# compares registries or shows one.
class Registry:
    """The loaded plugins and what they provide. Build one with :func:`get_registry`."""

    def __init__(
        self,
        *,
        pm: pluggy.PluginManager,
        root: Path,
        plugins: list[PluginRecord] | None = None,
        _formats: list[Registered[ImageFormat]] | None = None,
        _profiles: dict[str, Registered[Profile]] | None = None,
        profile_errors: dict[str, str] | None = None,
    ) -> None:
        self.pm = pm
        self.root = root
        self.plugins: list[PluginRecord] = [] if plugins is None else plugins
        self._formats = _formats
        self._profiles = _profiles
        self.profile_errors: dict[str, str] = {} if profile_errors is None else profile_errors
        #: every call of a hook or of an image format's callback goes through this
        self.hooks = Hooks(self.pm, lambda: self.plugins)

    # -- loading -----------------------------------------------------------------------------

    def register(
        self,
        plugin: object,
        name: str,
        *,
        distribution: str = "",
        version: str = "",
        builtin: bool = False,
    ) -> None:
        """Register one plugin object (module or instance) under ``name``."""
        self.pm.register(plugin, name=name)
        hooks = tuple(sorted(c.name for c in self.pm.get_hookcallers(plugin) or ()))
        self.plugins.append(
            PluginRecord(
                name=name,
                builtin=builtin,
                status="active",
                distribution=distribution,
                version=version,
                hooks=hooks,
            )
        )
        self._formats = self._profiles = None

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self.plugins = [p for p in self.plugins if p.name != name]
        self._formats = self._profiles = None

    def load_builtins(self) -> None:
        for modname in BUILTIN_PLUGINS:
            self.register(
                importlib.import_module(modname),
                modname,
                builtin=True,
                distribution="portable-services",
            )

    def load_entrypoints(
        self, *, disabled: Iterable[str] = (), strict: bool = False, cache: bool = False
    ) -> None:
        """Load the ``portable`` entry-point group; a plugin that fails is reported and skipped.

        With ``cache`` the scan comes from the on-disk cache while nothing has been installed
        or removed since (:mod:`portable.plugin.entrypoints`; the CLI uses it).
        """
        disabled = set(disabled)
        for ep in entrypoints.find(ENTRY_POINT_GROUP, cache=cache):
            dist, version = ep.dist, ep.version
            if ep.name in disabled or self.pm.is_blocked(ep.name):
                self.plugins.append(
                    PluginRecord(
                        name=ep.name,
                        builtin=False,
                        status="disabled",
                        distribution=dist,
                        version=version,
                    )
                )
                continue
            if self.pm.has_plugin(ep.name):
                continue
            try:
                plugin = ep.load()
                self.register(plugin, ep.name, distribution=dist, version=version)
            except Exception as exc:  # a broken plugin must not break the tool
                reason = f"{type(exc).__name__}: {exc}"
                where = f" ({dist} {version})" if dist else ""
                if strict:
                    raise PluginError(
                        f"plugin {ep.name!r}{where} failed to load: {reason}"
                    ) from exc
                warn(
                    f"plugin {ep.name!r}{where} failed to load and is skipped: {reason}"
                    f" (set {ENV_STRICT}=1 to make this fatal)"
                )
                if self.pm.has_plugin(ep.name):
                    self.pm.unregister(name=ep.name)
                self.plugins = [p for p in self.plugins if p.name != ep.name]
                self.plugins.append(
                    PluginRecord(
                        name=ep.name,
                        builtin=False,
                        status="failed",
                        distribution=dist,
                        version=version,
                        error=reason,
                    )
                )

    # -- collection --------------------------------------------------------------------------

    def formats(self) -> list[Registered[ImageFormat]]:
        """Every image format, sorted by name; a duplicate name is a :class:`PluginConflict`."""
        if self._formats is None:
            by_name: dict[str, Registered[ImageFormat]] = {}
            for reg in self.hooks.image_formats():
                if reg.spec.name in by_name:
                    other = by_name[reg.spec.name]
                    raise PluginConflict(
                        f"image format {reg.spec.name!r} is provided by two plugins: "
                        f"{_who(other)} and {_who(reg)}"
                    )
                by_name[reg.spec.name] = reg
            self._formats = sorted(by_name.values(), key=lambda r: r.spec.name)
        return self._formats

    def profiles(self) -> dict[str, Registered[Profile]]:
        """Every usable profile by name, resolved by priority; equal priorities conflict.

        Profiles that ``extend`` another are resolved here into concrete drop-ins; one that
        can't be (unknown base, a cycle) is left out and its reason kept for :meth:`profile`.
        """
        if self._profiles is None:
            candidates: dict[str, list[Registered[Profile]]] = {}
            for reg in self.hooks.profiles(root=self.root):
                candidates.setdefault(reg.spec.name, []).append(reg)
            for regs in candidates.values():
                regs.sort(key=lambda r: -r.spec.priority)
                # Decided once everything is in: only a tie at the *highest* priority conflicts.
                if len(regs) > 1 and regs[0].spec.priority == regs[1].spec.priority:
                    raise PluginConflict(
                        f"profile {regs[0].spec.name!r} is provided by two plugins: "
                        f"{_who(regs[0])} and {_who(regs[1])}"
                    )
            self.profile_errors = {}
            resolved: dict[str, Registered[Profile]] = {}
            for name, regs in sorted(candidates.items()):
                try:
                    resolved[name] = self._resolve(regs[0], candidates, ())
                except PortableError as exc:
                    self.profile_errors[name] = str(exc)
            self._profiles = resolved
        return self._profiles

    def _resolve(
        self,
        reg: Registered[Profile],
        candidates: dict[str, list[Registered[Profile]]],
        seen: tuple[str, ...],
    ) -> Registered[Profile]:
        spec = reg.spec
        if spec.extends is None:
            return reg
        key = f"{spec.name}@{spec.priority}"
        if key in seen:
            raise PortableError(f"profile {spec.name!r} ({spec.origin}) extends itself in a loop")
        if spec.extends == spec.name:  # the profile of that name this one overrides
            lower = [r for r in candidates.get(spec.name, []) if r.spec.priority < spec.priority]
            base_reg = lower[0] if lower else None
        else:
            regs = candidates.get(spec.extends, [])
            base_reg = regs[0] if regs else None
        if base_reg is None:
            raise PortableError(
                f"profile {spec.name!r} ({spec.origin}) extends unknown profile {spec.extends!r}"
            )
        base = self._resolve(base_reg, candidates, (*seen, key)).spec
        # here: only a profile that extends another needs it (the TOML reader's module, with the
        # edits' types; most commands have no such profile)
        from portable.profiles.files import resolve

        return reg._replace(spec=resolve(spec, base))

    def provided(self) -> dict[str, dict[str, list[str]]]:
        """What each plugin provides: plugin name -> {"formats": [...], "profiles": [...]}."""
        out: dict[str, dict[str, list[str]]] = {}
        for reg in self.formats():
            out.setdefault(reg.plugin, {}).setdefault("formats", []).append(reg.spec.name)
        for preg in self.hooks.profiles(root=self.root):
            names = out.setdefault(preg.plugin, {}).setdefault("profiles", [])
            if preg.spec.name not in names:
                names.append(preg.spec.name)
        return out

    def failed_plugins(self) -> list[PluginRecord]:
        return [p for p in self.plugins if p.status == "failed"]

    def profile(self, name: str, *, cwd: Path | None = None) -> Registered[Profile]:
        """Look a profile up by name, or load it from a path (anything with a ``/``: a TOML
        profile or a systemd drop-in, systemd issue #10235); an unknown name lists the known
        ones."""
        if "/" in name:
            return self._profile_from_path(name, cwd)
        profiles = self.profiles()
        if name in profiles:
            return profiles[name]
        if name in self.profile_errors:
            raise UnknownProfile(f"profile {name!r} can't be used: {self.profile_errors[name]}")
        msg = f"unknown profile {name!r}; available profiles: {', '.join(profiles) or 'none'}"
        failed = self.failed_plugins()
        if failed:
            msg += "; plugins that failed to load: " + ", ".join(
                f"{p.name} ({p.error})" for p in failed
            )
        raise UnknownProfile(msg)

    def _profile_from_path(self, arg: str, cwd: Path | None) -> Registered[Profile]:
        host = Host(self.root)
        # As image paths: relative to the current directory; with --root, inside the root.
        inside = os.path.normpath(os.path.join(cwd or Path.cwd(), arg))
        if not host.is_real and not arg.startswith("/"):
            try:
                inside = host.unpath(Path(inside))
            except ValueError:
                raise UnknownProfile(
                    f"profile path '{arg}' is outside the --root directory"
                ) from None
        elif not host.is_real:
            inside = os.path.normpath(arg)
        local = host.path(inside)
        from portable.profiles.files import load_dropin_profile, load_toml_profile  # as _resolve

        if inside.endswith(".toml"):
            spec = load_toml_profile(local, shown=inside, origin=inside)
            if spec.extends is not None:
                regs = {spec.extends: [self.profile(spec.extends)]}
                spec = self._resolve(
                    Registered(spec=spec, plugin="", distribution=""), regs, ()
                ).spec
        else:
            spec = load_dropin_profile(local, shown=inside, host_path=inside)
        return Registered(spec=spec, plugin="(file)", distribution="")

    def image_format(self, name: str) -> ImageFormat:
        for reg in self.formats():
            if reg.spec.name == name:
                return reg.spec
        raise UnknownImageFormat(f"unknown image format {name!r}")


def _who(reg: Registered[Any]) -> str:
    return f"{reg.plugin!r}" + (f" ({reg.distribution})" if reg.distribution else "")


def make_registry(
    *,
    root: Path = Path("/"),
    load_entrypoints: bool = True,
    disabled: Iterable[str] = (),
    strict: bool | None = None,
    builtins: bool = True,
    cache: bool = False,
) -> Registry:
    """Build a fresh registry: hookspecs, built-ins, then third-party entry points.

    ``cache``: take the entry-point scan from the on-disk cache when it is still valid.
    """
    pm = _PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if os.environ.get("PORTABLE_SERVICES_TRACE_PLUGINS"):
        pm.trace.root.setwriter(lambda *a: print(*a, file=sys.stderr))
        pm.enable_tracing()
    reg = Registry(pm=pm, root=root)
    if builtins:
        reg.load_builtins()
    if load_entrypoints and not _env_flag(ENV_NO_PLUGINS):
        env_disabled = [n.strip() for n in os.environ.get(ENV_DISABLE, "").split(",") if n.strip()]
        reg.load_entrypoints(
            disabled=[*disabled, *env_disabled],
            strict=_env_flag(ENV_STRICT) if strict is None else strict,
            cache=cache,
        )
    pm.check_pending()
    return reg


_cache: dict[tuple[Any, ...], Registry] = {}


def get_registry(
    *,
    root: Path = Path("/"),
    load_entrypoints: bool = True,
    disabled: Iterable[str] = (),
    cache: bool = False,
) -> Registry:
    """The process-wide registry for these settings (built once, on first use).

    ``cache``: on first use, take the entry-point scan from the on-disk cache when it is still
    valid (the CLI does; it saves importing ``importlib.metadata`` and reading every
    distribution's metadata).
    """
    key = (str(root), load_entrypoints, tuple(sorted(disabled)))
    if key not in _cache:
        _cache[key] = make_registry(
            root=root, load_entrypoints=load_entrypoints, disabled=disabled, cache=cache
        )
    return _cache[key]


@contextmanager
def seed_registry(registry: Registry) -> Iterator[None]:
    """Make :func:`get_registry` return ``registry`` for its root, for a while (tests)."""
    key = (str(registry.root), True, ())
    saved = dict(_cache)
    _cache.clear()
    _cache[key] = registry
    _cache[(str(registry.root), False, ())] = registry
    try:
        yield
    finally:
        _cache.clear()
        _cache.update(saved)


def reset_registry() -> None:
    """Forget cached registries (tests, or after installing a plugin in-process)."""
    _cache.clear()
