"""The hook facade (portable.plugin.hooks): one place calls every hook and format callback.

Every failure names the plugin and its distribution; vetoes stop before anything is written;
hooks that can't undo anything warn; format callbacks raise BadImage for a bad image and
anything else is the plugin's error (exit 1, never "internal error"); detect() errors are
"not mine", shown with --debug. Lifecycle hooks get the host, detach hooks an Image.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from portable import (
    AttachRefused,
    BadImage,
    DetachRefused,
    ExtraSetting,
    ImageFormat,
    PluginError,
    PortableError,
    hookimpl,
)
from portable.plugin.registry import Registry, make_registry
from portable.testing.images import make_directory_image, service_unit

ATTACHED = "etc/systemd/system.attached"
ACME = "plugin 'acme' (acme-portable 1.0)"

Register = Callable[..., None]


@pytest.fixture
def register(portable_registry: Registry) -> Iterator[Register]:
    """Register a plugin as an installed distribution would be: with its name and version."""
    added: list[str] = []

    def add(plugin: object, name: str = "acme", dist: str = "acme-portable") -> None:
        portable_registry.register(plugin, name, distribution=dist, version="1.0")
        added.append(name)

    yield add
    for name in added:
        portable_registry.unregister(name)


@pytest.fixture
def image(make_image: Callable[..., str]) -> str:
    return make_image("foo_1", units={"foo.service": service_unit()})


def attached(root: Path) -> bool:
    return (root / ATTACHED / "foo.service").exists()


# --- vetoes ------------------------------------------------------------------------------------


def test_a_pre_attach_veto_names_the_plugin_and_writes_nothing(
    register, image, portable_cli, portable_root
):
    class Sigcheck:
        @hookimpl
        def portable_pre_attach(self):
            raise AttachRefused("no valid signature")

    register(Sigcheck())
    code, out, err = portable_cli("attach", image)
    assert (code, err) == (1, f"portable: error: {ACME} refused the attach: no valid signature\n")
    assert not (portable_root / "etc/systemd").exists()


def test_a_pre_detach_veto_names_the_plugin(register, image, portable_cli, portable_root):
    class Keeper:
        @hookimpl
        def portable_pre_detach(self):
            raise DetachRefused("in use")

    register(Keeper())
    assert portable_cli("attach", image)[0] == 0
    code, out, err = portable_cli("detach", image)
    assert (code, err) == (1, f"portable: error: {ACME} refused the detach: in use\n")
    assert attached(portable_root)


def test_a_veto_keeps_its_exit_code(register, image, portable_cli):
    class Policy:
        @hookimpl
        def portable_pre_attach(self):
            raise AttachRefused("not today", exit_code=3)

    register(Policy())
    code, out, err = portable_cli("attach", image)
    assert (code, err) == (3, f"portable: error: {ACME} refused the attach: not today\n")


# --- failures of hooks that can stop the operation ---------------------------------------------


def test_pre_attach_failure_names_the_plugin(register, image, portable_cli, portable_root):
    class Broken:
        @hookimpl
        def portable_pre_attach(self):
            raise ValueError("boom")

    register(Broken())
    code, out, err = portable_cli("attach", image)
    assert (code, err) == (
        1,
        f"portable: error: {ACME} failed in portable_pre_attach: ValueError: boom\n",
    )
    assert not (portable_root / "etc/systemd").exists()


def test_pre_attach_bad_result_names_the_plugin(register, image, portable_cli):
    class Wrong:
        @hookimpl
        def portable_pre_attach(self):
            return ["Nice=5"]

    register(Wrong())
    code, out, err = portable_cli("attach", image)
    assert code == 1
    assert err == (
        f"portable: error: {ACME} returned 'Nice=5' from portable_pre_attach, not an ExtraSetting\n"
    )


def test_a_portable_error_keeps_its_class_and_code_and_names_the_plugin(
    register, image, portable_cli
):
    class Picky:
        @hookimpl
        def portable_pre_attach(self):
            raise PortableError("the vendor key is missing", exit_code=4)

    register(Picky())
    code, out, err = portable_cli("attach", image)
    assert (code, err) == (
        4,
        f"portable: error: {ACME} failed in portable_pre_attach: the vendor key is missing\n",
    )


def test_post_attach_failure_names_the_plugin_and_rolls_back(
    register, image, portable_cli, portable_root
):
    class Broken:
        @hookimpl
        def portable_post_attach(self):
            raise OSError(28, "No space left on device")

    register(Broken())
    code, out, err = portable_cli("attach", image)
    assert (code, err) == (
        1,
        f"portable: error: {ACME} failed in portable_post_attach, attach rolled back: "
        "OSError: [Errno 28] No space left on device\n",
    )
    assert not attached(portable_root)


def test_pre_detach_failure_names_the_plugin(register, image, portable_cli, portable_root):
    class Broken:
        @hookimpl
        def portable_pre_detach(self):
            raise KeyError("units")

    register(Broken())
    assert portable_cli("attach", image)[0] == 0
    code, out, err = portable_cli("detach", image)
    assert (code, err) == (
        1,
        f"portable: error: {ACME} failed in portable_pre_detach: KeyError: 'units'\n",
    )
    assert attached(portable_root)


@pytest.mark.parametrize("hook", ["portable_image_formats", "portable_profiles"])
def test_registration_hook_failure_names_the_plugin(register, image, portable_cli, hook):
    def broken(**kwargs: Any) -> list[Any]:
        raise RuntimeError("no config")

    plugin = type("Broken", (), {hook: staticmethod(hookimpl(broken))})()
    register(plugin)
    code, out, err = portable_cli("attach", image)
    assert code == 1
    assert err == (
        f"portable: error: {ACME} failed in {hook}: RuntimeError: no config "
        "(report this to the plugin's author)\n"
    )


def test_debug_shows_the_plugins_traceback(register, image, portable_cli):
    class Broken:
        @hookimpl
        def portable_pre_attach(self):
            raise ValueError("boom")

    register(Broken())
    code, out, err = portable_cli("--debug", "attach", image)
    assert code == 1
    assert "Traceback" in err and "in portable_pre_attach" in err
    assert 'raise ValueError("boom")' in err
    assert "The above exception was the direct cause" in err
    assert err.endswith(
        f"portable: error: {ACME} failed in portable_pre_attach: ValueError: boom\n"
    )
    code, out, err = portable_cli("attach", image)
    assert "Traceback" not in err


# --- hooks that can't undo anything: warnings ---------------------------------------------------


def test_attach_failed_failure_is_a_warning_naming_the_plugin(register, image, portable_cli):
    class Refuser:
        @hookimpl
        def portable_pre_attach(self):
            raise AttachRefused("no")

        @hookimpl
        def portable_attach_failed(self):
            raise RuntimeError("cleanup hiccup")

    register(Refuser())
    code, out, err = portable_cli("attach", image)
    assert (code, err) == (
        1,
        f"portable: warning: {ACME} failed in portable_attach_failed: RuntimeError: cleanup "
        f"hiccup\nportable: error: {ACME} refused the attach: no\n",
    )


def test_post_detach_failure_is_a_warning_and_every_plugin_is_called(
    register, image, portable_cli, portable_root
):
    called: list[str] = []

    class Broken:
        @hookimpl
        def portable_post_detach(self):
            called.append("broken")
            raise RuntimeError("audit log full")

    class Auditor:
        @hookimpl
        def portable_post_detach(self):
            called.append("auditor")

    register(Auditor(), "auditor", "acme-audit")
    register(Broken())  # registered last: called first
    assert portable_cli("attach", image)[0] == 0
    code, out, err = portable_cli("detach", image)
    assert code == 0 and not attached(portable_root)
    assert called == ["broken", "auditor"]
    assert (
        f"portable: warning: {ACME} failed in portable_post_detach: RuntimeError: audit log full\n"
    ) in err


# --- image-format callbacks ---------------------------------------------------------------------


def fake_format(tree: Path, **callbacks: Any) -> ImageFormat:
    """A format for ``*.fake`` files whose tree is ``tree``, callbacks overridden."""

    @contextmanager
    def open_tree(path: Path) -> Iterator[Path]:
        yield tree

    kwargs: dict[str, Any] = {
        "detect": lambda p: p.name.endswith(".fake"),
        "open": open_tree,
        **callbacks,
    }
    return ImageFormat(name="fake", description="a test format", image_type="directory", **kwargs)


def format_plugin(fmt: ImageFormat) -> object:
    class Plugin:
        @hookimpl
        def portable_image_formats(self):
            return [fmt]

    return Plugin()


@pytest.fixture
def fake_image(portable_root: Path) -> str:
    make_directory_image(
        portable_root / "srv/tree", units={"foo.service": service_unit()}, busybox=False
    )
    (portable_root / "srv/foo_1.fake").write_text("")
    return "/srv/foo_1.fake"


def test_open_raising_is_the_plugins_error_not_an_internal_one(
    register, portable_root, fake_image, portable_cli
):
    def open_broken(path: Path) -> Any:
        raise ValueError("bad header")

    register(format_plugin(fake_format(portable_root / "srv/tree", open=open_broken)))
    for verb in ("inspect", "attach"):
        code, out, err = portable_cli(verb, fake_image)
        assert (code, err) == (
            1,
            f"portable: error: {ACME} failed in image format 'fake' open(): "
            "ValueError: bad header\n",
        ), verb


def test_open_raising_when_leaving_is_the_plugins_error(
    register, portable_root, fake_image, portable_cli
):
    @contextmanager
    def open_leaky(path: Path) -> Iterator[Path]:
        yield portable_root / "srv/tree"
        raise RuntimeError("umount failed")

    register(format_plugin(fake_format(portable_root / "srv/tree", open=open_leaky)))
    code, out, err = portable_cli("inspect", fake_image)
    assert (code, err) == (
        1,
        f"portable: error: {ACME} failed in image format 'fake' open() (leaving): "
        "RuntimeError: umount failed\n",
    )


def test_open_raising_bad_image_is_shown_as_it_is(
    register, portable_root, fake_image, portable_cli
):
    def open_bad(path: Path) -> Any:
        raise BadImage(f"Image '{path}': truncated archive")

    register(format_plugin(fake_format(portable_root / "srv/tree", open=open_bad)))
    code, out, err = portable_cli("inspect", fake_image)
    # the local path below --root is shown as the host sees it, as every message does
    assert (code, err) == (1, "portable: error: Image '/srv/foo_1.fake': truncated archive\n")


def test_errors_inside_the_open_tree_are_not_the_formats(
    register, portable_root, fake_image, portable_cli
):
    (portable_root / "srv/tree/etc/os-release").unlink()
    (portable_root / "srv/tree/usr/lib/os-release").unlink()
    register(format_plugin(fake_format(portable_root / "srv/tree")))
    code, out, err = portable_cli("inspect", fake_image)
    assert code == 1 and "os-release" in err and "plugin" not in err


def test_unpack_raising_is_the_plugins_error(register, portable_root, fake_image, portable_cli):
    def unpack_broken(image: Path, destination: Path) -> None:
        raise ValueError("unsupported compression")

    register(format_plugin(fake_format(portable_root / "srv/tree", unpack=unpack_broken)))
    code, out, err = portable_cli("attach", fake_image)
    assert (code, err) == (
        1,
        f"portable: error: {ACME} failed in image format 'fake' unpack(): "
        "ValueError: unsupported compression\n",
    )
    assert not (portable_root / "etc/systemd/system.attached").exists()


def test_unpack_raising_bad_image_is_shown_as_it_is(
    register, portable_root, fake_image, portable_cli
):
    def unpack_bad(image: Path, destination: Path) -> None:
        raise BadImage("archive member ../etc/passwd leaves the image, refusing")

    register(format_plugin(fake_format(portable_root / "srv/tree", unpack=unpack_bad)))
    code, out, err = portable_cli("attach", fake_image)
    assert (code, err) == (
        1,
        "portable: error: archive member ../etc/passwd leaves the image, refusing\n",
    )


def test_detect_raising_is_not_mine_and_shown_with_debug(
    register, portable_root, fake_image, portable_cli
):
    def detect_broken(path: Path) -> bool:
        raise ZeroDivisionError("division by zero")

    register(format_plugin(fake_format(portable_root / "srv/tree", detect=detect_broken)))
    code, out, err = portable_cli("inspect", fake_image)
    assert code == 1 and "not a recognised image" in err
    assert "ZeroDivisionError" not in err  # without --debug: silently "not mine"
    code, out, err = portable_cli("--debug", "inspect", fake_image)
    assert code == 1 and "not a recognised image" in err
    warning = (
        f"portable: warning: {ACME} failed in image format 'fake' detect(): "
        "ZeroDivisionError: division by zero (taken as not this format)\n"
    )
    assert warning in err
    # the other formats still work
    make_directory_image(portable_root / "srv/bar_1", units={"bar.service": service_unit()})
    assert portable_cli("inspect", "/srv/bar_1")[0] == 0


def test_debug_shows_a_format_callbacks_traceback(
    register, portable_root, fake_image, portable_cli
):
    def open_broken(path: Path) -> Any:
        raise ValueError("bad header")

    register(format_plugin(fake_format(portable_root / "srv/tree", open=open_broken)))
    code, out, err = portable_cli("--debug", "inspect", fake_image)
    assert code == 1 and "Traceback" in err and "in open_broken" in err


# --- what lifecycle hooks get -------------------------------------------------------------------


class Recorder:
    """Records what every lifecycle hook gets."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @hookimpl
    def portable_pre_attach(self, host, image):
        self.calls.append(("pre_attach", {"host": host, "image": image}))

    @hookimpl
    def portable_post_attach(self, host, image, changes):
        # Change.path is relative to host.root: host.path() is where the file is
        there = [c.path for c in changes if c.type != "unlink" and host.path(c.path).exists()]
        self.calls.append(("post_attach", {"host": host, "image": image, "there": there}))

    @hookimpl
    def portable_attach_failed(self, host, image):
        self.calls.append(("attach_failed", {"host": host, "image": image}))

    @hookimpl
    def portable_pre_detach(self, host, image, units):
        self.calls.append(("pre_detach", {"host": host, "image": image, "units": units}))

    @hookimpl
    def portable_post_detach(self, host, image, units, changes):
        self.calls.append(
            ("post_detach", {"host": host, "image": image, "units": units, "changes": changes})
        )


def test_lifecycle_hooks_get_the_host_and_detach_an_image(
    register, image, portable_cli, portable_root
):
    rec = Recorder()
    register(rec)
    assert portable_cli("attach", image)[0] == 0
    assert portable_cli("detach", image)[0] == 0
    assert [name for name, _ in rec.calls] == [
        "pre_attach",
        "post_attach",
        "pre_detach",
        "post_detach",
    ]
    for name, got in rec.calls:
        assert got["host"].root == portable_root and not got["host"].is_real, name
        assert got["image"].path == image and got["image"].name == "foo_1", name
        assert got["image"].host_path == portable_root / image.lstrip("/"), name
        assert got["image"].format.name == "directory", name
    assert f"/{ATTACHED}/foo.service" in rec.calls[1][1]["there"]
    assert rec.calls[3][1]["units"] == ["foo.service"]


def test_detach_of_an_image_that_is_gone(register, make_image, portable_cli, portable_root):
    import shutil

    raw = make_image("bar_1", units={"bar.service": service_unit()})
    rec = Recorder()
    register(rec)
    assert portable_cli("attach", raw)[0] == 0
    shutil.rmtree(portable_root / raw.lstrip("/"))
    assert portable_cli("detach", raw)[0] == 0
    pre = rec.calls[-2][1]["image"]
    assert rec.calls[-2][0] == "pre_detach" and rec.calls[-1][1]["image"] == pre
    assert (pre.path, pre.name, pre.format.name) == (raw, "bar_1", "unknown")
    assert not pre.host_path.exists()


def test_attach_failed_gets_the_host(register, image, portable_cli, portable_root):
    class Refuser:
        @hookimpl(trylast=True)
        def portable_pre_attach(self):
            raise AttachRefused("no")

    rec = Recorder()
    register(rec)
    register(Refuser(), "refuser", "acme-refuser")
    assert portable_cli("attach", image)[0] == 1
    assert [n for n, _ in rec.calls] == ["pre_attach", "attach_failed"]
    assert rec.calls[1][1]["host"].root == portable_root


def test_reattach_calls_post_detach_for_the_old_version(
    register, make_image, portable_cli, portable_root
):
    old = make_image("foo_1", units={"foo.service": service_unit("/v1")})
    new = make_image("foo_2", units={"foo.service": service_unit("/v2")})
    rec = Recorder()
    assert portable_cli("attach", old)[0] == 0
    register(rec)
    code, out, err = portable_cli("reattach", new)
    assert code == 0, err
    names = [n for n, _ in rec.calls]
    assert names == ["pre_detach", "pre_attach", "post_attach", "post_detach"]
    pre_detach, post_detach = rec.calls[0][1], rec.calls[3][1]
    assert pre_detach["image"].path == old and post_detach["image"].path == old
    assert post_detach["units"] == ["foo.service"]
    assert post_detach["host"].root == portable_root
    assert rec.calls[1][1]["image"].path == new


def test_reattach_post_detach_failure_is_a_warning(register, make_image, portable_cli):
    old = make_image("foo_1", units={"foo.service": service_unit("/v1")})
    new = make_image("foo_2", units={"foo.service": service_unit("/v2")})

    class Broken:
        @hookimpl
        def portable_post_detach(self):
            raise RuntimeError("audit log full")

    assert portable_cli("attach", old)[0] == 0
    register(Broken())
    code, out, err = portable_cli("reattach", new)
    assert code == 0
    assert (
        f"portable: warning: {ACME} failed in portable_post_detach: RuntimeError: audit log full"
        in err
    )


# --- the facade itself --------------------------------------------------------------------------


def test_call_order_is_pluggys(tmp_path):
    registry = make_registry(root=tmp_path, load_entrypoints=False, builtins=False)
    order: list[str] = []

    def plugin(name: str, **marks: bool) -> object:
        def pre(options):
            order.append(name)
            return [ExtraSetting(key="Nice", value=name[-1])]

        return type(name, (), {"portable_pre_attach": staticmethod(hookimpl(**marks)(pre))})()

    registry.register(plugin("p1"), "p1")
    registry.register(plugin("p2", trylast=True), "p2")
    registry.register(plugin("p3"), "p3")
    registry.register(plugin("p4", tryfirst=True), "p4")
    kwargs = dict.fromkeys(["host", "image", "units", "profile", "metadata"])
    out = registry.hooks.call("portable_pre_attach", {**kwargs, "options": None})
    # as pluggy's own call: tryfirst, then the last registered first, trylast last
    assert order == ["p4", "p3", "p1", "p2"]
    assert [rec.name for rec, _ in out] == order
    order.clear()
    registry.pm.hook.portable_pre_attach(**kwargs, options=None)
    assert order == ["p4", "p3", "p1", "p2"]


def test_registered_formats_keep_their_plugin(portable_registry, register, tmp_path):
    fmt = fake_format(tmp_path)
    register(format_plugin(fmt))
    reg = next(r for r in portable_registry.formats() if r.spec.name == "fake")
    assert (reg.plugin, reg.distribution, reg.version) == ("acme", "acme-portable", "1.0")
    assert reg.spec.detect(Path("x.fake")) and not reg.spec.detect(Path("x.raw"))


def test_plugin_error_is_a_portable_error():
    assert issubclass(PluginError, PortableError)


def test_nothing_else_calls_the_plugin_manager():
    """Only portable.plugin.hooks calls hooks (``pm.hook``/``.hook.``) in core/ and plugins/."""
    top = Path(__file__).resolve().parent.parent
    pattern = re.compile(r"\.hook\.|\bpm\.hook\b|\.hook\b(?!s)")
    offenders = [
        f"{path.relative_to(top)}:{n}"
        for base in ("core", "plugins")
        for path in sorted((top / base).rglob("*.py"))
        if path != top / "core/plugin/hooks.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line) and not line.lstrip().startswith("#")
    ]
    assert offenders == []


def test_a_builtin_plugins_bug_names_it_too(portable_registry, image, portable_cli):
    # Built-in plugins get the same policy as third-party ones: a bug of theirs (an exception
    # that is not a PortableError) is that plugin's error, exit 1, not "internal error".
    class Buggy:
        @hookimpl
        def portable_pre_attach(self):
            raise ValueError("boom")

    name = "portable.plugins.hooks.buggy"
    portable_registry.register(Buggy(), name, distribution="portable-services", builtin=True)
    try:
        code, out, err = portable_cli("attach", image)
    finally:
        portable_registry.unregister(name)
    expected = (
        f"plugin '{name}' (portable-services) failed in portable_pre_attach: ValueError: boom"
    )
    assert code == 1 and expected in err and "internal error" not in err
