"""One place that calls plugins: :class:`Hooks`, one method per hook and per image-format callback.

The engine never calls ``pm.hook`` or an :class:`~portable.plugin.types.ImageFormat` callback
itself: it calls ``registry.hooks.<hook>(...)``. Each implementation is called on its own (a
pluggy subset caller per plugin), so every outcome is known per plugin, in pluggy's order:
lifecycle hooks in call order (``tryfirst`` first, then the last registered first, ``trylast``
last), registration hooks in registration order (the order of ``portable plugins``).

When a plugin fails
-------------------

Every message names the plugin and its distribution (and version, when known)::

    plugin 'sigcheck' (acme-portable 1.0) ...

* **A veto** (:class:`~portable.errors.AttachRefused` from ``portable_pre_attach``,
  :class:`~portable.errors.DetachRefused` from ``portable_pre_detach``) stops the operation before
  anything is written: ``plugin 'sigcheck' (acme-portable 1.0) refused the attach: <its
  message>``, exit 1 (or the exit code it carries).
* **Any other exception** in a hook that can stop the operation (``portable_pre_attach``,
  ``portable_post_attach``, which rolls the attach back, ``portable_pre_detach``, and the
  registration hooks): a :class:`~portable.errors.PluginError` ``plugin 'x' (dist 1.0) failed
  in portable_pre_attach: ValueError: boom``, exit 1, chained to the plugin's exception, so
  ``--debug`` shows its traceback. A :class:`~portable.errors.PortableError` the plugin raised
  on purpose keeps its class and exit code; its message gets the same ``plugin ... failed in
  <hook>:`` prefix.
* **Hooks that can't undo anything** (``portable_attach_failed``: the attach failed already;
  ``portable_post_detach``: the files are gone): one warning line naming the plugin, and the
  operation completes (or fails with its own error).
* **Image-format callbacks** (``detect``, ``open``, ``unpack``): a
  :class:`~portable.errors.BadImage` (or any :class:`~portable.errors.PortableError`) is a
  message about the image and is shown as it is; anything else is that plugin's
  :class:`~portable.errors.PluginError` (exit 1), traceback with ``--debug``. An exception in
  ``detect()`` means "not mine", so one plugin can't break detection for the others; with
  ``--debug`` a warning line names the plugin and the exception.
* The **built-in** plugins (``portable.plugins.*``) go through the same policy, with one
  difference: a :class:`~portable.errors.PortableError` they raise on purpose is shown as
  portable's own errors are, without the prefix (``--netns needs the running host...``); their
  image formats' ``open``/``unpack`` errors are portable's own too.

Adding a hook: a method here that calls :meth:`Hooks.call` (lifecycle hooks, in call order) or
:meth:`Hooks.collect` (registration hooks, whose results keep their plugin), with the policy
above.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

from portable.errors import AttachRefused, DetachRefused, PluginError, PortableError, warn
from portable.plugin import types as spec_types
from portable.plugin.types import CliOption, ImageFormat

if TYPE_CHECKING:
    import pluggy

    from portable.plugin.types import (
        AttachOptions,
        Change,
        DetachOptions,
        ExtraSetting,
        Image,
        ImageMetadata,
        Profile,
        UnitFile,
    )
    from portable.systemd.host import Host

__all__ = ["Hooks", "PluginRecord", "Registered"]

G = TypeVar("G")

T = TypeVar("T")


# Registered and PluginRecord are NamedTuples (built by keyword, never changed once made): a
# dataclass costs ~0.4 ms to build, and every command loads the registry.
class Registered(NamedTuple, Generic[T]):
    """A spec object together with the plugin that returned it (provenance kept outside it)."""

    spec: T
    plugin: str
    distribution: str
    version: str = ""


class PluginRecord(NamedTuple):
    """One plugin as the registry saw it. ``status`` is ``active``, ``disabled`` or ``failed``."""

    name: str
    builtin: bool
    status: str
    distribution: str = ""
    version: str = ""
    error: str = ""
    hooks: tuple[str, ...] = ()

    def describe(self) -> str:
        """``plugin 'name' (distribution version)``: how every message names a plugin."""
        where = " ".join(p for p in (self.distribution, self.version) if p)
        return f"plugin {self.name!r}" + (f" ({where})" if where else "")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, PortableError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def _prefixed(exc: PortableError, prefix: str) -> PortableError:
    """``exc`` itself (class, exit code, traceback kept) with ``prefix`` before its message."""
    exc.message = f"{prefix}{exc.message}"
    exc.args = (exc.message,)
    return exc


def _failure(
    rec: PluginRecord,
    hook: str,
    exc: Exception,
    *,
    refusal: type[PortableError] | None = None,
    action: str = "",
    then: str = "",
    hint: str = "",
) -> Exception:
    """What the user is shown of ``exc``, raised by ``rec``'s ``hook`` (the policy above): a
    third party's :class:`~portable.errors.PortableError` prefixed with the plugin (a
    built-in's as it is: its refusals are portable's own messages), anything else a
    :class:`~portable.errors.PluginError` naming the plugin, built-in or not."""
    if isinstance(exc, PortableError):
        if rec.builtin:
            return exc
        if refusal is not None and isinstance(exc, refusal):
            return _prefixed(exc, f"{rec.describe()} refused the {action}: ")
        return _prefixed(exc, f"{rec.describe()} failed in {hook}{then}: ")
    return PluginError(f"{rec.describe()} failed in {hook}{then}: {_reason(exc)}{hint}")


# A registration hook that raises is a bug of the plugin, found at every run
_REPORT = " (report this to the plugin's author)"


class Hooks:
    """The typed facade over the plugin manager: every hook call and format callback.

    Reached as ``registry.hooks``. ``debug`` (set by the CLI for ``--debug``) turns on the
    warnings that are otherwise silent (a ``detect()`` that raised).
    """

    def __init__(
        self,
        pm: pluggy.PluginManager,
        records: Callable[[], Sequence[PluginRecord]],
        *,
        warn: Callable[[str], None] = warn,
    ) -> None:
        self._pm = pm
        self._records = records
        self.warn = warn
        self.debug = False

    # -- the generic per-plugin calling ------------------------------------------------------

    def record(self, plugin_name: str) -> PluginRecord:
        """The registry's record of a plugin (a bare one for a plugin registered behind its
        back, straight on the plugin manager)."""
        for rec in self._records():
            if rec.name == plugin_name:
                return rec
        return PluginRecord(name=plugin_name, builtin=False, status="active")

    def implementations(
        self, hook: str, *, call_order: bool = True
    ) -> list[tuple[PluginRecord, Callable[..., list[Any]]]]:
        """``(plugin, caller of that plugin's implementation alone)`` for ``hook``.

        ``call_order``: pluggy's call order (lifecycle hooks); else registration order.
        """
        impls = getattr(self._pm.hook, hook).get_hookimpls()
        # get_hookimpls() lists trylast first and tryfirst last; pluggy calls from the end.
        ordered = list(reversed(impls)) if call_order else list(impls)
        plugins = self._pm.get_plugins()
        out: list[tuple[PluginRecord, Callable[..., list[Any]]]] = []
        seen: set[int] = set()
        for impl in ordered:
            if id(impl.plugin) in seen:  # a plugin with two implementations: called once
                continue
            seen.add(id(impl.plugin))
            others = [p for p in plugins if p is not impl.plugin]
            caller = self._pm.subset_hook_caller(hook, remove_plugins=others)
            out.append((self.record(impl.plugin_name), caller))
        return out

    def call(
        self,
        hook: str,
        kwargs: Mapping[str, Any],
        *,
        refusal: type[PortableError] | None = None,
        action: str = "",
        then: str = "",
    ) -> list[tuple[PluginRecord, Any]]:
        """Call ``hook``'s implementations one by one, in call order; a failure stops.

        :param refusal: the exception class that is a veto (``AttachRefused``), reported as
            ``plugin ... refused the <action>: <message>``.
        :param then: what the failure entails, after the hook's name (``", attach rolled
            back"``).
        :returns: ``(plugin, result)`` for every result that is not ``None``.
        :raises PluginError: for any other exception, naming the plugin, chained to it.
        """
        results: list[tuple[PluginRecord, Any]] = []
        for rec, caller in self.implementations(hook):
            try:
                out = caller(**kwargs)
            except Exception as exc:
                error = _failure(rec, hook, exc, refusal=refusal, action=action, then=then)
                raise error from (None if error is exc else exc)
            results.extend((rec, r) for r in out)
        return results

    def call_all(self, hook: str, kwargs: Mapping[str, Any]) -> list[str]:
        """Call every implementation of ``hook``, whatever the others do.

        :returns: one warning line per plugin that failed (naming it); the caller shows them.
        """
        warnings: list[str] = []
        for rec, caller in self.implementations(hook):
            try:
                caller(**kwargs)
            except Exception as exc:
                warnings.append(f"{rec.describe()} failed in {hook}: {_reason(exc)}")
        return warnings

    def collect(self, hook: str, kwargs: Mapping[str, Any], kind: type[T]) -> list[Registered[T]]:
        """A registration hook's results, each with its plugin, in registration order.

        :raises PluginError: a plugin raised, or returned something that isn't a ``kind``.
        """
        out: list[Registered[T]] = []
        for rec, caller in self.implementations(hook, call_order=False):
            try:
                # Iterate inside the try: a generator hook raises while being consumed.
                specs = [spec for batch in caller(**kwargs) for spec in (batch or ())]
            except Exception as exc:
                error = _failure(rec, hook, exc, hint=_REPORT)
                raise error from (None if error is exc else exc)
            for spec in specs:
                if not isinstance(spec, kind):
                    raise PluginError(
                        f"{rec.describe()} returned {spec!r} from {hook}, not a {kind.__name__}"
                    )
                out.append(
                    Registered(
                        spec=spec,
                        plugin=rec.name,
                        distribution=rec.distribution,
                        version=rec.version,
                    )
                )
        return out

    # -- registration hooks: what plugins provide ---------------------------------------------

    def image_formats(self) -> list[Registered[ImageFormat]]:
        """``portable_image_formats``: every plugin's formats, in registration order, their
        callbacks wrapped (see "image-format callbacks" below)."""
        return [
            reg._replace(spec=self._guarded(reg))
            for reg in self.collect("portable_image_formats", {}, ImageFormat)
        ]

    def profiles(self, *, root: Path) -> list[Registered[Profile]]:
        """``portable_profiles``: every plugin's profiles, in registration order."""
        # (spec_types.Profile: the profile types are built only by commands that collect them)
        return self.collect("portable_profiles", {"root": root}, spec_types.Profile)

    # -- lifecycle hooks ----------------------------------------------------------------------

    def pre_attach(
        self,
        *,
        host: Host,
        image: Image,
        units: Sequence[UnitFile],
        profile: Profile,
        options: AttachOptions,
        metadata: ImageMetadata,
    ) -> list[ExtraSetting]:
        """``portable_pre_attach``: the extra settings of every plugin, in call order; a veto
        or a failure stops the attach (nothing is written yet)."""
        kwargs = {
            "host": host,
            "image": image,
            "units": list(units),
            "profile": profile,
            "options": options,
            "metadata": metadata,
        }
        settings: list[ExtraSetting] = []
        for rec, batch in self.call(
            "portable_pre_attach", kwargs, refusal=AttachRefused, action="attach"
        ):
            for setting in batch:
                if not isinstance(setting, spec_types.ExtraSetting):  # (as Profile above)
                    raise PluginError(
                        f"{rec.describe()} returned {setting!r} from portable_pre_attach, "
                        "not an ExtraSetting"
                    )
                settings.append(setting)
        return settings

    def post_attach(
        self,
        *,
        host: Host,
        image: Image,
        units: Sequence[UnitFile],
        profile: Profile,
        options: AttachOptions,
        changes: Sequence[Change],
        metadata: ImageMetadata,
    ) -> None:
        """``portable_post_attach``: a failure rolls the attach back (the caller's transaction)."""
        self.call(
            "portable_post_attach",
            {
                "host": host,
                "image": image,
                "units": list(units),
                "profile": profile,
                "options": options,
                "changes": list(changes),
                "metadata": metadata,
            },
            then=", attach rolled back",
        )

    def attach_failed(
        self,
        *,
        host: Host,
        image: Image,
        units: Sequence[UnitFile],
        options: AttachOptions,
        error: BaseException,
    ) -> list[str]:
        """``portable_attach_failed``: every plugin is called; failures are warning lines."""
        return self.call_all(
            "portable_attach_failed",
            {
                "host": host,
                "image": image,
                "units": list(units),
                "options": options,
                "error": error,
            },
        )

    def pre_detach(
        self, *, host: Host, image: Image, units: Sequence[str], options: DetachOptions
    ) -> None:
        """``portable_pre_detach``: a veto or a failure stops the detach (nothing removed)."""
        self.call(
            "portable_pre_detach",
            {"host": host, "image": image, "units": list(units), "options": options},
            refusal=DetachRefused,
            action="detach",
        )

    def post_detach(
        self,
        *,
        host: Host,
        image: Image,
        units: Sequence[str],
        options: DetachOptions,
        changes: Sequence[Change],
    ) -> list[str]:
        """``portable_post_detach``: every plugin is called; failures are warning lines."""
        return self.call_all(
            "portable_post_detach",
            {
                "host": host,
                "image": image,
                "units": list(units),
                "options": options,
                "changes": list(changes),
            },
        )

    # -- image-format callbacks ---------------------------------------------------------------
    #
    # The formats the registry hands out are the plugins' own with their callbacks wrapped in
    # these (image_formats() does it, once): whoever calls ``image.format.open(...)`` (inspect,
    # the unpack cache, a plugin) gets the policy above, and the error names the plugin.

    def _guarded(self, reg: Registered[ImageFormat]) -> ImageFormat:
        fmt, rec = reg.spec, self.record(reg.plugin)
        if rec.builtin:  # portable's own formats: only detect() is kept from breaking others
            return replace(fmt, detect=partial(self.detect, rec, fmt))
        unpack = fmt.unpack
        return replace(
            fmt,
            detect=partial(self.detect, rec, fmt),
            open=partial(self.open, rec, fmt),
            unpack=None if unpack is None else partial(self.unpack, rec, fmt, unpack),
        )

    @staticmethod
    def _format_error(
        rec: PluginRecord, fmt: ImageFormat, call: str, exc: Exception
    ) -> PluginError:
        return PluginError(
            f"{rec.describe()} failed in image format {fmt.name!r} {call}: {_reason(exc)}"
        )

    def detect(self, rec: PluginRecord, fmt: ImageFormat, path: Path) -> bool:
        """``fmt.detect(path)``; an exception is "not mine" (a warning with ``--debug``)."""
        try:
            return bool(fmt.detect(path))
        except Exception as exc:  # one plugin's detect() must not break detection for others
            if self.debug:
                error = self._format_error(rec, fmt, "detect()", exc)
                self.warn(f"{error} (taken as not this format)")
            return False

    @contextmanager
    def open(self, rec: PluginRecord, fmt: ImageFormat, path: Path) -> Iterator[Path]:
        """``fmt.open(path)``: the image's tree. What the body of the ``with`` raises passes
        through as it is; what the format raises entering or leaving follows the policy."""
        try:
            cm: AbstractContextManager[Path] = fmt.open(path)
            tree = cm.__enter__()
        except PortableError:
            raise
        except Exception as exc:
            raise self._format_error(rec, fmt, "open()", exc) from exc
        try:
            yield tree
        except BaseException as body:
            try:
                suppressed = cm.__exit__(type(body), body, body.__traceback__)
            except PortableError:
                raise
            except Exception as exc:
                if exc is body:
                    raise
                raise self._format_error(rec, fmt, "open() (leaving)", exc) from exc
            if not suppressed:
                raise
        else:
            try:
                cm.__exit__(None, None, None)
            except PortableError:
                raise
            except Exception as exc:
                raise self._format_error(rec, fmt, "open() (leaving)", exc) from exc

    def unpack(
        self,
        rec: PluginRecord,
        fmt: ImageFormat,
        unpack: Callable[[Path, Path], None],
        image: Path,
        destination: Path,
    ) -> None:
        """``fmt.unpack(image, destination)``, with the policy above."""
        try:
            unpack(image, destination)
        except PortableError:
            raise
        except Exception as exc:
            raise self._format_error(rec, fmt, "unpack()", exc) from exc

    # -- the command line: options and commands plugins add (portable.cli.plugin_cli) ----------

    def cli_options(self) -> list[Registered[CliOption[Any]]]:
        """``portable_cli_options``: every plugin's options, in registration order (the command
        line checks their names)."""
        return self.collect("portable_cli_options", {}, CliOption)

    def register_commands(self, new_group: Callable[[], G]) -> list[tuple[PluginRecord, G]]:
        """``portable_register_commands``: each plugin adds its commands to a group of its own,
        made by ``new_group`` (a click group: this module imports no click), so each command
        keeps its plugin; in registration order. A failure is the plugin's error, as in
        :meth:`collect`."""
        hook = "portable_register_commands"
        out: list[tuple[PluginRecord, G]] = []
        for rec, caller in self.implementations(hook, call_order=False):
            group = new_group()
            try:
                caller(cli=group)
            except Exception as exc:
                error = _failure(rec, hook, exc, hint=_REPORT)
                raise error from (None if error is exc else exc)
            out.append((rec, group))
        return out
