"""Every hook: documented with its exact signature, and tested here through portable.testing.

(The meta-tests keep the plugin surface honest: a new hook without docs or a test fails.)
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from portable import (
    AttachRefused,
    DetachRefused,
    ExtraSetting,
    ImageFormat,
    Profile,
    ProfileDropin,
    hookimpl,
)
from portable.plugin import hookspecs
from portable.testing.images import service_unit

DOCS = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"
HOOKS = sorted(n for n in dir(hookspecs) if n.startswith("portable_"))


def signature(name: str) -> str:
    sig = inspect.signature(getattr(hookspecs, name), eval_str=False)
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"{name}({params}) -> {sig.return_annotation}"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_with_its_signature(hook):
    assert f"### `{signature(hook)}`" in DOCS.read_text(), f"docs/plugins.md lacks {hook}"
    assert (getattr(hookspecs, hook).__doc__ or "").strip(), f"{hook} has no docstring"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook):
    tests = Path(__file__).resolve().parent
    pattern = re.compile(rf"^def test_hook_{hook}\b", re.M)
    assert any(pattern.search(p.read_text()) for p in tests.glob("test_*.py")), hook


def test_docs_name_no_hook_that_does_not_exist():
    documented = set(re.findall(r"^### `(portable_\w+)\(", DOCS.read_text(), re.M))
    assert documented == set(HOOKS)


# --- one test per hook, the way a plugin author writes them -------------------------------


def test_hook_portable_image_formats(register_plugin, portable_root, portable_cli):
    from contextlib import contextmanager

    @contextmanager
    def open_marker(path):
        yield path.with_suffix(".d")

    fmt = ImageFormat(
        name="marked",
        description="a directory named *.marked",
        image_type="directory",
        detect=lambda p: p.name.endswith(".marked"),
        open=open_marker,
    )

    class Plugin:
        @hookimpl
        def portable_image_formats(self):
            return [fmt]

    register_plugin(Plugin(), "marked-format")
    tree = portable_root / "srv/x_1.d"
    from portable.testing.images import make_directory_image

    make_directory_image(tree, units={"x.service": service_unit()}, busybox=False)
    (portable_root / "srv/x_1.marked").write_text("")
    code, out, err = portable_cli("inspect", "/srv/x_1.marked")
    assert code == 0, err
    assert "\tx.service\n" in out
    code, out, err = portable_cli("plugins", "--json")
    assert '"marked"' in out


def test_hook_portable_profiles(register_plugin, make_image, portable_cli, portable_root):
    seen_roots = []

    class Plugin:
        @hookimpl
        def portable_profiles(self, root):
            seen_roots.append(root)
            return [
                Profile(
                    name="isolated",
                    description="no network",
                    dropins={"service": ProfileDropin(text="[Service]\nPrivateNetwork=yes\n")},
                )
            ]

    register_plugin(Plugin(), "isolated-profile")
    image = make_image("foo_1", units={"foo.service": service_unit()})
    code, out, err = portable_cli("attach", "--profile=isolated", image)
    assert code == 0, err
    assert seen_roots == [portable_root]
    dropin = portable_root / "etc/systemd/system.attached/foo.service.d/10-profile.conf"
    assert dropin.read_text() == "[Service]\nPrivateNetwork=yes\n"


def test_hook_portable_pre_attach(register_plugin, make_image, portable_cli, portable_root):
    class Policy:
        @hookimpl
        def portable_pre_attach(self, image, units, profile, options):
            if profile.name == "trusted":
                raise AttachRefused("policy: no trusted profile here")
            return [ExtraSetting(key="Nice", value="5")]

    register_plugin(Policy(), "policy")
    image = make_image("foo_1", units={"foo.service": service_unit()})
    code, out, err = portable_cli("attach", "--profile=trusted", image)
    assert (code, err) == (
        1,
        "portable: error: plugin 'policy' refused the attach: policy: no trusted profile here\n",
    )
    assert not (portable_root / "etc/systemd").exists()
    code, out, err = portable_cli("attach", image)
    assert code == 0
    text = portable_root / "etc/systemd/system.attached/foo.service.d/20-portable.conf"
    # after portabled's own lines (the root has no systemd: the newest known behaviour, 257)
    assert text.read_text().endswith(
        "LogExtraFields=PORTABLE_NAME_AND_VERSION=portabletest_1\nNice=5\n"
    )


def test_hook_portable_post_attach(register_plugin, make_image, portable_cli, portable_root):
    calls = []

    class Recorder:
        @hookimpl
        def portable_post_attach(self, image, units, changes):
            calls.append((image.path, [u.name for u in units], [c.type for c in changes]))
            if len(calls) == 2:
                raise RuntimeError("disk full")

    register_plugin(Recorder(), "recorder")
    image = make_image("foo_1", units={"foo.service": service_unit()})
    assert portable_cli("attach", image)[0] == 0
    assert calls[0][0] == image and calls[0][1] == ["foo.service"]
    assert calls[0][2] == ["mkdir", "mkdir", "write", "copy", "copy", "symlink"]
    portable_cli("detach", image)
    code, out, err = portable_cli("attach", image)  # the second call fails: rolled back
    assert code == 1 and "rolled back" in err and "disk full" in err
    assert not (portable_root / "etc/systemd/system.attached").exists()


def test_hook_portable_pre_detach(register_plugin, make_image, portable_cli, portable_root):
    class Guard:
        @hookimpl
        def portable_pre_detach(self, image, units, options):
            if not options.force:
                raise DetachRefused(f"guard: {', '.join(units)} must be detached with --force")

    register_plugin(Guard(), "guard")
    image = make_image("foo_1", units={"foo.service": service_unit()})
    assert portable_cli("attach", image)[0] == 0
    code, out, err = portable_cli("detach", image)
    assert (code, err) == (
        1,
        "portable: error: plugin 'guard' refused the detach: "
        "guard: foo.service must be detached with --force\n",
    )
    assert (portable_root / "etc/systemd/system.attached/foo.service").exists()
    assert portable_cli("detach", "--force", image)[0] == 0


def test_hook_portable_post_detach(register_plugin, make_image, portable_cli, portable_root):
    calls = []

    class Cleaner:
        @hookimpl
        def portable_post_detach(self, image, units, changes):
            calls.append((image.path, list(units), len(changes)))
            raise RuntimeError("cache already gone")

    register_plugin(Cleaner(), "cleaner")
    image = make_image("foo_1", units={"foo.service": service_unit()})
    assert portable_cli("attach", image)[0] == 0
    code, out, err = portable_cli("detach", image)
    assert code == 0  # a post-detach failure is a warning: the files are gone
    assert (
        "portable: warning: plugin 'cleaner' failed in portable_post_detach: "
        "RuntimeError: cache already gone"
    ) in err
    assert calls == [(image, ["foo.service"], 6)]
    assert not (portable_root / "etc/systemd/system.attached").exists()


def test_hook_portable_attach_failed(register_plugin, make_image, portable_cli, portable_root):
    made: list[str] = []  # what the plugin "created" outside the attached files
    failed: list[tuple[str, str]] = []

    class Reserver:
        @hookimpl
        def portable_pre_attach(self, image):
            made.append(image.name)

        @hookimpl
        def portable_attach_failed(self, image, units, options, error):
            failed.append((image.name, str(error)))
            if image.name in made:
                made.remove(image.name)  # undo only what it did
            raise RuntimeError("cleanup hiccup")  # a warning; the user sees the real error

    class Refuser:
        @hookimpl(trylast=True)  # after the reserver made its reservation
        def portable_pre_attach(self, image):
            if image.name == "bad_1":
                raise AttachRefused("refuser: not this one")

        @hookimpl
        def portable_post_attach(self, image):
            if image.name == "late_1":
                raise RuntimeError("disk full")

    register_plugin(Reserver(), "reserver")
    register_plugin(Refuser(), "refuser")
    good = make_image("good_1", units={"good.service": service_unit()})
    bad = make_image("bad_1", units={"bad.service": service_unit()})
    late = make_image("late_1", units={"late.service": service_unit()})

    assert portable_cli("attach", good)[0] == 0  # a success: the hook is not called
    assert failed == [] and made == ["good_1"]

    code, out, err = portable_cli("attach", bad)  # refused by a later pre-attach hook
    refusal = "plugin 'refuser' refused the attach: refuser: not this one"
    assert code == 1 and f"portable: error: {refusal}" in err
    assert (
        "portable: warning: plugin 'reserver' failed in portable_attach_failed: RuntimeError"
    ) in err
    assert failed == [("bad_1", refusal)] and made == ["good_1"]

    code, out, err = portable_cli("attach", late)  # written, then rolled back
    assert code == 1 and "disk full" in err
    assert failed[-1][0] == "late_1" and made == ["good_1"]
    assert not (portable_root / "etc/systemd/system.attached/late.service").exists()
    assert (portable_root / "etc/systemd/system.attached/good.service").exists()

    # several images in one call: all or nothing, every image whose hooks ran is told
    failed.clear()
    code, out, err = portable_cli("detach", good)
    assert code == 0
    code, out, err = portable_cli("attach", good, late)
    assert code == 1 and [name for name, _ in failed] == ["good_1", "late_1"]
    assert made == ["good_1"]  # left from the first attach: the plugin's own bookkeeping
