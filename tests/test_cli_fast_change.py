"""The click-free path for plain ``attach``, ``reattach``, ``detach`` and ``inspect``
(portable.cli.fast.run_declared, portable.cli.parse), against click's path.

Each spelling runs twice on the same root, restored in between: through the fast path and
through click. Both must give the same status, stdout and stderr, leave the same files, and
hand plugins the same values; whatever the fast path does not recognise must be left to
click.
"""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_probe import PROBE, fast_path

from portable import CliOption, PortableError, hookimpl
from portable.cli import guarded
from portable.cli.fast import run_fast
from portable.cli.group import run_click
from portable.cli.verbs import VERBS, body
from portable.plugin.types import AttachOptions, DetachOptions
from portable.testing.images import service_unit

EXT = "/srv/ext/app-ext"


def level(text: str) -> int:
    value = int(text)  # ValueError: a usage error, said by click
    if value > 9:
        raise PortableError("at most 9")
    return value


FLAG = CliOption[bool](name="--audit", verbs=("attach", "detach", "reattach"), flag=True, help="A.")
LEVEL = CliOption(name="--level", verbs=("attach", "reattach"), convert=level, default=3, help="L.")
TAG = CliOption[str](name="--tag", verbs=("detach", "attach"), help="T.")


class Recorder:
    """A third-party plugin with options of each kind; its hooks record what they get."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []

    @hookimpl
    def portable_cli_options(self) -> list[CliOption[Any]]:
        self.seen.append(("cli_options",))
        return [FLAG, LEVEL, TAG]

    @hookimpl
    def portable_pre_attach(self, options: AttachOptions) -> None:
        v = options.plugin_options
        self.seen.append(("attach", dict(v), v.value(FLAG), v.value(LEVEL), v.value(TAG)))

    @hookimpl
    def portable_pre_detach(self, options: DetachOptions) -> None:
        v = options.plugin_options
        self.seen.append(("detach", dict(v), v.value(FLAG), v.value(TAG)))


@pytest.fixture
def root(portable_root, portable_registry, make_image):
    for name in ("app", "other", "foo_1", "foo_2"):
        unit = name.split("_")[0]
        make_image(name, units={f"{unit}.service": service_unit(), f"{unit}-x.socket": ""})
    ext = portable_root / EXT.lstrip("/")
    (ext / "usr/lib/extension-release.d").mkdir(parents=True)
    (ext / "usr/lib/extension-release.d/extension-release.app-ext").write_text("ID=_any\n")
    (ext / "usr/lib/systemd/system").mkdir(parents=True)
    (ext / "usr/lib/systemd/system/app-ext.service").write_text(service_unit())
    (portable_root / "var/lib/portables").mkdir(parents=True)
    (portable_root / "var/lib/portables/linked").symlink_to("/srv/images/other")
    return portable_root


def tree(root: Path) -> dict[str, Any]:
    """Every file under ``root``: its kind, mode and content (a link: its target)."""
    out: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            st = path.lstat()
            if path.is_symlink():
                out[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                out[rel] = ("dir", st.st_mode)
            else:
                out[rel] = ("file", st.st_mode, path.read_bytes())
    return out


def run_both(root: Path, setup: list[list[str]], args: list[str], capsys, plugin=None):
    """``args`` through the fast path, then (the root as it was before) through click:
    ``(status, stdout, stderr)``, the files and what the plugin saw, for each path."""
    argv = ["--root", str(root), *args]
    for pre in setup:
        status = guarded(lambda pre=pre: run_click(["--root", str(root), *pre]), debug=False)
        assert status == 0, (pre, capsys.readouterr())
    saved = root.parent / (root.name + ".before")
    shutil.copytree(root, saved, symlinks=True)
    answered: list[bool] = []

    results = []
    for run in (
        lambda: guarded(fast_path(argv, answered), debug=False),
        lambda: guarded(lambda: run_click(argv), debug=False),
    ):
        capsys.readouterr()
        if plugin is not None:
            plugin.seen.clear()
        status = run()
        out = capsys.readouterr()
        results.append(
            ((status, out.out, out.err), tree(root), list(plugin.seen) if plugin else None)
        )
        shutil.rmtree(root)
        shutil.copytree(saved, root, symlinks=True)
    shutil.rmtree(saved)
    assert answered == [True], f"{args} was left to click"
    return results


def case_id(part: list[Any]) -> str:
    """A case's id: its setup (commands run before, ``;``-separated) and its arguments."""
    if part and isinstance(part[0], list):
        return "; ".join(map(" ".join, part))
    return " ".join(part)


ATTACHED = [["attach", "-q", "/srv/images/app"]]
ATTACHED_EXT = [["attach", "-q", "--extension", EXT, "/srv/images/app"]]
RUNTIME = [["attach", "-q", "--runtime", "/srv/images/app"]]
FOO_1 = [["attach", "-q", "/srv/images/foo_1"]]

CASES: list[tuple[list[list[str]], list[str]]] = [
    # attach
    ([], ["attach", "/srv/images/app"]),
    ([], ["attach", "-q", "/srv/images/app"]),
    ([], ["attach", "/srv/images/app", "--quiet"]),
    ([], ["-q", "attach", "/srv/images/app"]),
    ([], ["attach", "linked"]),
    ([], ["attach", "--profile", "strict", "/srv/images/app"]),
    ([], ["attach", "--profile=trusted", "/srv/images/app"]),
    ([], ["attach", "-p", "nonetwork", "/srv/images/app"]),
    ([], ["attach", "-pstrict", "/srv/images/app"]),
    ([], ["attach", "-p", "strict", "--profile", "default", "/srv/images/app"]),
    ([], ["attach", "--profile", "no-such-profile", "/srv/images/app"]),
    ([], ["attach", "--profile=help", "/srv/images/app"]),
    ([], ["attach", "--copy=help", "/srv/images/app"]),
    ([], ["attach", "/srv/images/missing"]),
    ([], ["attach", "missing"]),
    ([], ["attach", "../escape"]),
    (ATTACHED, ["attach", "/srv/images/app"]),
    (ATTACHED, ["attach", "--force", "/srv/images/app"]),
    (ATTACHED, ["attach", "--runtime", "/srv/images/app"]),
    ([], ["attach", "--runtime", "/srv/images/app"]),
    ([], ["--runtime", "attach", "/srv/images/app"]),
    ([], ["attach", "--copy", "copy", "/srv/images/app"]),
    ([], ["attach", "--copy=symlink", "/srv/images/app"]),
    ([], ["attach", "--copy", "mixed", "/srv/images/app"]),
    ([], ["attach", "--copy", "bogus", "/srv/images/app"]),
    ([], ["attach", "--now", "/srv/images/app"]),
    ([], ["attach", "--enable", "--no-block", "/srv/images/app"]),
    ([], ["attach", "/srv/images/app", "app"]),
    ([], ["attach", "/srv/images/app", "app-x", "nomatch"]),
    ([], ["attach", "/srv/images/app", "nomatch"]),
    ([], ["attach", "/srv/images/app", "/srv/images/other"]),
    ([], ["attach", "/srv/images/app", "app", "/srv/images/other"]),
    ([], ["attach", "--extension", EXT, "/srv/images/app"]),
    ([], ["attach", f"--extension={EXT}", "/srv/images/app", "--extension", EXT]),
    ([], ["attach", "--extension", "/srv/nowhere", "/srv/images/app"]),
    ([], ["attach", "--no-reload", "/srv/images/app"]),
    ([], ["attach", "--reload", "/srv/images/app"]),
    ([], ["attach", "--reload", "--no-reload", "/srv/images/app"]),
    ([], ["attach", "--allow-setting", "PrivateNetwork,User", "/srv/images/app"]),
    ([], ["attach", "--strict-image", "/srv/images/app"]),
    ([], ["attach", "--no-legend", "--cat", "--no-pager", "/srv/images/app"]),
    ([], ["attach", "--no-ask-password", "/srv/images/app"]),
    ([], ["attach", "--max-exposure", "9.5", "/srv/images/app"]),
    ([], ["attach", "--max-exposure=0.1", "/srv/images/app"]),
    # reattach
    (FOO_1, ["reattach", "/srv/images/foo_2"]),
    (FOO_1, ["reattach", "-q", "--profile", "strict", "/srv/images/foo_2"]),
    (FOO_1, ["reattach", "--copy", "copy", "--runtime", "/srv/images/foo_2"]),
    ([], ["reattach", "/srv/images/foo_2"]),
    (FOO_1, ["reattach", "/srv/images/missing_3"]),
    # detach
    (ATTACHED, ["detach", "/srv/images/app"]),
    (ATTACHED, ["detach", "-q", "/srv/images/app"]),
    (ATTACHED, ["detach", "--no-block", "--no-legend", "/srv/images/app"]),
    (ATTACHED, ["detach", "--profile", "strict", "--copy=copy", "/srv/images/app"]),
    (ATTACHED, ["detach", "/srv/images/app", "app"]),
    (ATTACHED, ["detach", "--now", "/srv/images/app"]),
    (ATTACHED, ["detach", "--enable", "/srv/images/app", "app-x"]),
    (ATTACHED, ["detach", "--clean", "/srv/images/app"]),
    (ATTACHED, ["detach", "--runtime", "/srv/images/app"]),
    (ATTACHED, ["detach", "--force", "--reload", "/srv/images/app"]),
    (ATTACHED, ["detach", "--reload", "--no-reload", "/srv/images/app"]),
    (RUNTIME, ["detach", "--runtime", "/srv/images/app"]),
    (RUNTIME, ["detach", "/srv/images/app"]),
    (ATTACHED_EXT, ["detach", "--extension", EXT, "/srv/images/app"]),
    (ATTACHED_EXT, ["detach", "/srv/images/app"]),
    ([], ["detach", "/srv/images/app"]),
    ([], ["detach", "/srv/images/missing"]),
    (
        [["attach", "-q", "/srv/images/app", "/srv/images/other"]],
        ["detach", "/srv/images/app", "/srv/images/other"],
    ),
    # inspect
    ([], ["inspect", "/srv/images/app"]),
    ([], ["inspect", "linked"]),
    ([], ["inspect", "-q", "/srv/images/app"]),
    ([], ["inspect", "--cat", "/srv/images/app"]),
    ([], ["inspect", "--json", "/srv/images/app"]),
    ([], ["inspect", "--json", "--cat", "-p", "strict", "/srv/images/app"]),
    ([], ["inspect", "--profile", "strict", "/srv/images/app"]),
    ([], ["inspect", "--profile=no-such-profile", "/srv/images/app"]),
    ([], ["inspect", "/srv/images/app", "-"]),
    ([], ["inspect", "/srv/images/app", "app-x", "nomatch"]),
    ([], ["inspect", "--extension", EXT, "/srv/images/app"]),
    ([], ["inspect", "--extension", EXT, "--force", "--cat", "/srv/images/app"]),
    ([], ["inspect", "--no-pager", "--runtime", "--now", "/srv/images/app"]),
    ([], ["inspect", "/srv/images/missing"]),
    (ATTACHED, ["inspect", "/srv/images/app"]),
]


@pytest.mark.parametrize(
    ("setup", "args"),
    CASES,
    ids=case_id,
)
def test_plain_calls_answer_and_change_as_through_click(root, setup, args, capsys):
    fast, slow = run_both(root, setup, args, capsys)
    assert fast[0] == slow[0]
    assert fast[1] == slow[1]
    assert fast[0][1] or fast[0][2] or "-q" in args or "--quiet" in args


PLUGIN_CASES: list[tuple[list[list[str]], list[str]]] = [
    ([], ["attach", "/srv/images/app"]),
    ([], ["attach", "--audit", "/srv/images/app"]),
    ([], ["attach", "--level", "7", "--tag=x", "--audit", "/srv/images/app"]),
    ([], ["attach", "--tag", "a", "--level=1", "--tag", "b", "/srv/images/app"]),
    ([], ["attach", "--level", "9", "--level", "2", "--audit", "--audit", "/srv/images/app"]),
    (FOO_1, ["reattach", "--level", "5", "--audit", "/srv/images/foo_2"]),
    (FOO_1, ["reattach", "/srv/images/foo_2"]),
    (ATTACHED, ["detach", "/srv/images/app"]),
    (ATTACHED, ["detach", "--tag", "t", "--audit", "/srv/images/app"]),
]


@pytest.mark.parametrize(
    ("setup", "args"),
    PLUGIN_CASES,
    ids=case_id,
)
def test_plugins_get_the_same_values(root, register_plugin, setup, args, capsys):
    plugin = Recorder()
    register_plugin(plugin, "recorder")
    fast, slow = run_both(root, setup, args, capsys, plugin=plugin)
    assert fast == slow
    assert fast[0][0] == 0, fast[0]
    assert [s for s in fast[2] if s[0] != "cli_options"], fast[2]  # its hooks ran
    assert fast[2].count(("cli_options",)) == 1  # asked once, as click's path asks


def test_plugins_see_the_defaults_when_not_given(root, register_plugin, capsys):
    plugin = Recorder()
    register_plugin(plugin, "recorder")
    fast, _ = run_both(root, [], ["attach", "-q", "/srv/images/app"], capsys, plugin=plugin)
    assert fast[2][-1] == ("attach", {}, False, 3, None)
    fast, _ = run_both(
        root, [], ["attach", "-q", "--level=4", "--audit", "/srv/images/app"], capsys, plugin
    )
    assert fast[2][-1] == ("attach", {"audit": True, "level": 4}, True, 4, None)


def test_a_converter_that_fails_is_the_plugins_error_on_both_paths(root, register_plugin, capsys):
    def broken(text: str) -> str:
        raise KeyError(text)

    class Broken:
        @hookimpl
        def portable_cli_options(self) -> list[CliOption[Any]]:
            return [CliOption(name="--broken", verbs=("attach",), convert=broken, help="B.")]

    register_plugin(Broken(), "breaks")
    fast, slow = run_both(root, [], ["attach", "--broken=x", "/srv/images/app"], capsys)
    assert fast == slow
    assert fast[0] == (
        1,
        "",
        "portable: error: plugin 'breaks' failed reading --broken 'x': KeyError: 'x'\n",
    )


@pytest.mark.parametrize(
    ("setup", "args"),
    [([], ["attach", "/srv/images/app"]), (ATTACHED, ["detach", "/srv/images/app"])],
    ids=case_id,
)
def test_ctrl_c_in_a_verb_is_reported_as_through_click(root, setup, args, capsys, monkeypatch):
    name = args[0]

    def interrupted(*args: Any, **kwargs: Any) -> int:
        raise KeyboardInterrupt

    # the verb's function, as both paths look it up (portable.cli.verbs.body)
    module = __import__(f"portable.cli.{name}", fromlist=[name])
    monkeypatch.setattr(module, name, interrupted)
    fast, slow = run_both(root, setup, args, capsys)
    assert fast == slow
    assert fast[0] == (1, "", "\nportable: error: aborted\n")


def test_a_conflicting_plugin_option_is_the_same_error(root, register_plugin, capsys):
    class Clash:
        @hookimpl
        def portable_cli_options(self) -> list[CliOption[Any]]:
            return [CliOption(name="--strict-image", verbs=("attach",), flag=True, help="C.")]

    register_plugin(Clash(), "clash")
    fast, slow = run_both(root, [], ["attach", "/srv/images/app"], capsys)
    assert fast == slow
    assert "one of portable attach's own options" in fast[0][2]


LEFT_TO_CLICK = [
    ["attach", "--help"],
    ["attach", "-h", "/srv/images/app"],
    ["attach"],
    ["attach", "--profile"],
    ["attach", "--profile=", "/srv/images/app"],
    ["attach", "--profile", "--now", "/srv/images/app"],
    ["attach", "-p", "-x", "/srv/images/app"],
    ["attach", "--now=yes", "/srv/images/app"],
    ["attach", "-qp", "strict", "/srv/images/app"],
    ["attach", "-x", "/srv/images/app"],
    ["attach", "--bogus", "/srv/images/app"],
    ["attach", "--json", "/srv/images/app"],
    ["attach", "--prof", "strict", "/srv/images/app"],
    ["attach", "--", "/srv/images/app"],
    ["attach", "", "/srv/images/app"],
    ["attach", "--max-exposure", "lots", "/srv/images/app"],
    ["attach", "--max-exposure", "/srv/images/app"],
    ["attach", "--netns=yes", "/srv/images/app"],
    ["--debug", "attach", "/srv/images/app"],
    ["--no-plugins", "attach", "/srv/images/app"],
    ["--disable-plugin", "x", "detach", "/srv/images/app"],
    ["detach"],
    ["detach", "--clean=1", "/srv/images/app"],
    ["reattach", "--clean", "/srv/images/app"],
    ["inspect"],
    ["inspect", "--help"],
    ["inspect", "--netns", "/srv/images/app"],
    ["inspect", "--cat=1", "/srv/images/app"],
    ["inspect", "--extension", "/srv/images/app"],
]


@pytest.mark.parametrize("args", LEFT_TO_CLICK, ids=" ".join)
def test_anything_else_is_left_to_click(root, args):
    assert run_fast(["--root", str(root), *args]) is None


@pytest.mark.parametrize(
    "args",
    [["attach", "--level", "x", "/srv/images/app"], ["attach", "--level=10", "/srv/images/app"]],
)
def test_a_refused_plugin_value_is_left_to_click(root, register_plugin, args, capsys):
    register_plugin(Recorder(), "recorder")
    assert run_fast(["--root", str(root), *args]) is None
    status = guarded(lambda: run_click(["--root", str(root), *args]), debug=False)
    assert status == 2 and "--level" in capsys.readouterr().err


def test_each_verb_takes_what_its_table_declares():
    """The click-free bodies and the table can't drift: every declared parameter is one of the
    body's keyword arguments, and the body has no other."""
    for verb in VERBS.values():
        params = inspect.signature(body(verb)).parameters
        named = {n for n, p in params.items() if p.kind is p.KEYWORD_ONLY}
        declared = {p.dest for p in verb.params} | (
            {"plugin_options"} if verb.plugin_options else set()
        )
        takes_rest = any(p.kind is p.VAR_KEYWORD for p in params.values())
        assert named <= declared, verb.name
        assert takes_rest or named == declared, verb.name


def test_the_console_script_does_not_import_click_for_them(root):
    def modules(*args: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-c", PROBE, "--root", str(root), *args],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.splitlines()[-1]

    for args in (
        ["inspect", "/srv/images/app"],
        ["attach", "-q", "--profile", "strict", "/srv/images/app"],
        ["reattach", "-q", "/srv/images/app"],
        ["detach", "-q", "/srv/images/app"],
    ):
        assert modules(*args) == "modules: False False", args  # --root: no manager either
    assert modules("attach", "--help").startswith("modules: True")
