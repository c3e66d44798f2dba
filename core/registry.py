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
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import pluggy

from portable import hookspecs
from portable.errors import PluginConflict, PluginError, UnknownImageFormat, UnknownProfile
from portable.types import ImageFormat, Profile

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
)

ENV_NO_PLUGINS = "PORTABLE_SERVICES_NO_PLUGINS"
ENV_DISABLE = "PORTABLE_SERVICES_DISABLE_PLUGINS"
ENV_STRICT = "PORTABLE_SERVICES_STRICT_PLUGINS"

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True, slots=True)
class Registered(Generic[T]):
    """A spec object together with the plugin that returned it (provenance kept outside it)."""

    spec: T
    plugin: str
    distribution: str


@dataclass(kw_only=True, slots=True)
class PluginRecord:
    """One plugin as the registry saw it. ``status`` is ``active``, ``disabled`` or ``failed``."""

    name: str
    builtin: bool
    status: str
    distribution: str = ""
    version: str = ""
    error: str = ""
    hooks: tuple[str, ...] = ()


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "yes", "true", "on")


def _warn(message: str) -> None:
    print(f"portable: warning: {message}", file=sys.stderr)


@dataclass(kw_only=True)
class Registry:
    """The loaded plugins and what they provide. Build one with :func:`get_registry`."""

    pm: pluggy.PluginManager
    root: Path
    plugins: list[PluginRecord] = field(default_factory=list)
    _formats: list[Registered[ImageFormat]] | None = None
    _profiles: dict[str, Registered[Profile]] | None = None

    @property
    def hook(self) -> Any:
        return self.pm.hook

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

    def load_entrypoints(self, *, disabled: Iterable[str] = (), strict: bool = False) -> None:
        """Load the ``portable`` entry-point group; a plugin that fails is reported and skipped."""
        from importlib.metadata import entry_points  # ~13 ms: only when plugins are loaded

        disabled = set(disabled)
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist is not None else ""
            version = ep.dist.version if ep.dist is not None else ""
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
                _warn(
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

    def _collect(self, hook_name: str, call: Callable[[Any], Any]) -> list[Registered[Any]]:
        """Call ``hook_name`` once per plugin so every result keeps its provenance."""
        records = {p.name: p for p in self.plugins}
        out: list[Registered[Any]] = []
        caller = getattr(self.pm.hook, hook_name)
        for impl in caller.get_hookimpls():
            others = [p for p in self.pm.get_plugins() if p is not impl.plugin]
            sub = self.pm.subset_hook_caller(hook_name, remove_plugins=others)
            rec = records.get(impl.plugin_name)
            dist = rec.distribution if rec else ""
            try:
                # Iterate inside the try: a generator hook raises while being consumed.
                specs = [spec for batch in call(sub) for spec in (batch or ())]
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(
                    f"plugin {impl.plugin_name!r} failed in {hook_name}: {type(exc).__name__}: "
                    f"{exc} (report this to the plugin's author)"
                ) from exc
            out.extend(
                Registered(spec=spec, plugin=impl.plugin_name, distribution=dist) for spec in specs
            )
        return out

    def formats(self) -> list[Registered[ImageFormat]]:
        """Every image format, sorted by name; a duplicate name is a :class:`PluginConflict`."""
        if self._formats is None:
            found = self._collect("portable_image_formats", lambda h: h())
            by_name: dict[str, Registered[ImageFormat]] = {}
            for reg in found:
                if not isinstance(reg.spec, ImageFormat):
                    raise PluginError(
                        f"plugin {reg.plugin!r} returned {reg.spec!r} from "
                        "portable_image_formats, not an ImageFormat"
                    )
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
        """Every profile by name, resolved by priority; equal priorities are a conflict."""
        if self._profiles is None:
            found = self._collect("portable_profiles", lambda h: h(root=self.root))
            candidates: dict[str, list[Registered[Profile]]] = {}
            for reg in found:
                if not isinstance(reg.spec, Profile):
                    raise PluginError(
                        f"plugin {reg.plugin!r} returned {reg.spec!r} from "
                        "portable_profiles, not a Profile"
                    )
                candidates.setdefault(reg.spec.name, []).append(reg)
            by_name: dict[str, Registered[Profile]] = {}
            # Decided once everything is in: only a tie at the *highest* priority conflicts.
            for name, regs in candidates.items():
                top = max(r.spec.priority for r in regs)
                best = [r for r in regs if r.spec.priority == top]
                if len(best) > 1:
                    raise PluginConflict(
                        f"profile {name!r} is provided by two plugins: "
                        f"{_who(best[0])} and {_who(best[1])}"
                    )
                by_name[name] = best[0]
            self._profiles = dict(sorted(by_name.items()))
        return self._profiles

    def failed_plugins(self) -> list[PluginRecord]:
        return [p for p in self.plugins if p.status == "failed"]

    def profile(self, name: str) -> Registered[Profile]:
        """Look a profile up by name; an unknown name lists the known ones."""
        profiles = self.profiles()
        if name in profiles:
            return profiles[name]
        msg = f"unknown profile {name!r}; available profiles: {', '.join(profiles) or 'none'}"
        failed = self.failed_plugins()
        if failed:
            msg += "; plugins that failed to load: " + ", ".join(
                f"{p.name} ({p.error})" for p in failed
            )
        raise UnknownProfile(msg)

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
) -> Registry:
    """Build a fresh registry: hookspecs, built-ins, then third-party entry points."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
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
        )
    pm.check_pending()
    return reg


_cache: dict[tuple[Any, ...], Registry] = {}


def get_registry(
    *, root: Path = Path("/"), load_entrypoints: bool = True, disabled: Iterable[str] = ()
) -> Registry:
    """The process-wide registry for these settings (built once, on first use)."""
    key = (str(root), load_entrypoints, tuple(sorted(disabled)))
    if key not in _cache:
        _cache[key] = make_registry(root=root, load_entrypoints=load_entrypoints, disabled=disabled)
    return _cache[key]


def reset_registry() -> None:
    """Forget cached registries (tests, or after installing a plugin in-process)."""
    _cache.clear()
