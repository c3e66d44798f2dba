"""Plugins extend the command line (issue 13, item 3): options of attach, reattach and detach
(``portable_cli_options``) whose values reach the plugin's own hooks, and commands of their own
(``portable_register_commands``). The built-in --netns, --netns-subnet and --max-exposure come
through the same hook."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import click
import pytest

from portable import CliOption, PluginError, PortableError, hookimpl
from portable.cli import group
from portable.plugin import entrypoints, registry
from portable.plugin.types import CLI_OPTION_VERBS, AttachOptions, DetachOptions, PluginOptions
from portable.testing.images import service_unit

DOCS = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"


def hex_key(text: str) -> str:
    if not text or any(c not in "0123456789abcdef" for c in text):
        raise ValueError("must be lower-case hex")
    if len(text) > 16:
        raise PortableError("at most 16 digits")
    return text


VENDOR_KEY = CliOption(
    name="--vendor-key",
    verbs=("attach", "reattach"),
    metavar="KEY",
    convert=hex_key,
    help="Key the image must be signed with.",
)
AUDIT = CliOption[bool](name="--audit", verbs=("detach", "reattach"), flag=True, help="Audit it.")
LEVEL = CliOption(name="--level", verbs=("attach",), convert=int, default=3, help="A level.")


class Vendor:
    """A third-party plugin: options on attach/reattach/detach, read back by its own hooks."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, object, object, bool]] = []

    @hookimpl
    def portable_cli_options(self):
        return [VENDOR_KEY, AUDIT, LEVEL]

    @hookimpl
    def portable_pre_attach(self, options: AttachOptions) -> None:
        values = options.plugin_options
        self.seen.append(
            ("attach", values.value(VENDOR_KEY), values.value(LEVEL), options.reattach)
        )

    @hookimpl
    def portable_pre_detach(self, options: DetachOptions) -> None:
        values = options.plugin_options
        self.seen.append(("detach", values.value(AUDIT), values.value(VENDOR_KEY), False))


class Commands:
    @hookimpl
    def portable_register_commands(self, cli: click.Group) -> None:
        @cli.command(name="vendor-keys", help="List the vendor keys this host trusts.\n\nMore.")
        @click.option("--all", "show_all", is_flag=True)
        @click.pass_obj
        def vendor_keys(app, show_all: bool) -> None:
            click.echo(f"keys below {app.root} all={show_all}")


def options_of(*specs: CliOption[object]) -> object:
    class Plugin:
        @hookimpl
        def portable_cli_options(self):
            return list(specs)

    return Plugin()


@pytest.fixture
def image(make_image):
    return make_image("foo_1", units={"foo.service": service_unit()})


def test_hook_portable_cli_options(register_plugin, portable_cli, image):
    plugin = Vendor()
    register_plugin(plugin, "vendor")
    code, out, err = portable_cli("attach", "-q", "--vendor-key=ab12", image)
    assert code == 0, err
    code, out, err = portable_cli("detach", "--audit", image)
    assert code == 0, err
    code, out, err = portable_cli("attach", "-q", "--level", "7", image)
    assert code == 0, err
    # reattach: both halves get reattach's values
    code, out, err = portable_cli("reattach", "-q", "--vendor-key", "ff", "--audit", image)
    assert code == 0, err
    assert plugin.seen == [
        ("attach", "ab12", 3, False),
        ("detach", True, None, False),
        ("attach", None, 7, False),
        ("detach", True, "ff", False),
        ("attach", "ff", 3, True),
    ]


def test_help_lists_the_options_of_plugins(register_plugin, portable_cli):
    register_plugin(Vendor(), "vendor")
    code, out, err = portable_cli("attach", "--help")
    assert code == 0, err
    out = " ".join(out.split())  # as wrapped for any width
    assert "--vendor-key KEY Key the image must be signed with. [plugin vendor]" in out
    assert "--level VALUE" in out and "[default: 3]" in out
    assert "--audit" not in out  # detach's and reattach's, not attach's
    # the built-in plugins' options: without a plugin's name
    for name in ("--netns ", "--netns-subnet CIDR", "--max-exposure N"):
        assert name in out
    assert "[plugin portable" not in out
    code, out, err = portable_cli("detach", "--help")
    assert "--audit" in out and "--vendor-key" not in out and "--netns" not in out
    code, out, err = portable_cli("reattach", "--help")
    assert "--audit" in out and "--vendor-key KEY" in out and "--netns-subnet" in out


def test_bad_value_is_a_one_line_usage_error(register_plugin, portable_cli, image, portable_root):
    register_plugin(Vendor(), "vendor")
    code, out, err = portable_cli("attach", "--vendor-key=XYZ", image)
    assert (code, err) == (
        2,
        "portable: error: Invalid value for '--vendor-key': must be lower-case hex "
        "(see 'portable attach --help')\n",
    )
    code, out, err = portable_cli("attach", "--vendor-key", "a" * 17, image)
    assert code == 2 and err.count("\n") == 1
    assert "Invalid value for '--vendor-key': at most 16 digits" in err
    code, out, err = portable_cli("attach", "--level", "x", image)
    assert code == 2 and "Invalid value for '--level': invalid literal for int()" in err
    code, out, err = portable_cli("attach", "--vendor-key", image)  # the value is missing
    assert code == 2 and "--vendor-key" in err
    assert not (portable_root / "etc/systemd").exists()


def test_a_converter_that_fails_otherwise_is_the_plugins_error(
    register_plugin, portable_cli, image
):
    def broken(text: str) -> str:
        raise KeyError(text)

    spec = CliOption(name="--broken", verbs=("attach",), convert=broken, help="Broken.")
    register_plugin(options_of(spec), "breaks")
    code, out, err = portable_cli("attach", "--broken=x", image)
    assert (code, err) == (
        1,
        "portable: error: plugin 'breaks' failed reading --broken 'x': KeyError: 'x'\n",
    )


def test_same_option_from_two_plugins_names_both(register_plugin, portable_cli, image):
    register_plugin(Vendor(), "vendor")
    other = CliOption(name="--vendor-key", verbs=("detach",), help="Another one.")
    register_plugin(options_of(other), "other")
    for verb in ("attach", "detach"):  # whichever verb uses it
        code, out, err = portable_cli(verb, "--help")
        assert (code, err) == (
            1,
            "portable: error: option --vendor-key is added by two plugins: plugin 'vendor' and "
            "plugin 'other'\n",
        )
    assert portable_cli("list")[0] == 0  # other verbs are not concerned


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("--profile", "option --profile of plugin 'p' is reserved"),
        ("--extension", "option --extension of plugin 'p' is reserved"),
        ("--cat", "option --cat of plugin 'p' is reserved"),
        ("--root", "option --root of plugin 'p' is reserved"),
        ("--help", "option --help of plugin 'p' is one of portable attach's own options"),
        ("--strict-image", "option --strict-image of plugin 'p' is one of portable attach's own"),
        ("--netns", "option --netns is added by two plugins: plugin "),
    ],
)
def test_an_option_portable_has_is_refused(register_plugin, portable_cli, name, message):
    register_plugin(options_of(CliOption(name=name, verbs=("attach",), help="x")), "p")
    code, out, err = portable_cli("attach", "--help")
    assert code == 1 and err.startswith(f"portable: error: {message}"), err


def test_spec_is_checked_where_the_plugin_makes_it():
    for kwargs, message in (
        ({"name": "vendor-key"}, "invalid option name 'vendor-key'"),
        ({"name": "--Vendor"}, "invalid option name '--Vendor'"),
        ({"name": "-k"}, "invalid option name '-k'"),
        ({"name": "--k_ey"}, "invalid option name"),
        ({"verbs": ()}, "option --x: no verbs"),
        ({"verbs": ("list",)}, "a plugin can't add options to 'list'"),
        ({"flag": True, "convert": int}, "a flag takes no convert or default"),
    ):
        args = {"name": "--x", "verbs": ("attach",), "help": "h", **kwargs}
        with pytest.raises(PluginError, match=message):
            CliOption(**args)
    assert CliOption(name="--vendor-key", verbs=("detach",), help="").dest == "vendor_key"


def test_plugin_options_are_a_read_only_mapping():
    opts = AttachOptions(plugin_options={"vendor_key": "ab", "audit": True})
    assert isinstance(opts.plugin_options, PluginOptions)
    assert dict(opts.plugin_options) == {"vendor_key": "ab", "audit": True}
    assert opts.plugin_options.value(VENDOR_KEY) == "ab" and opts.plugin_options.given(AUDIT)
    assert opts.plugin_options.value(LEVEL) == 3 and not opts.plugin_options.given(LEVEL)
    assert DetachOptions().plugin_options.value(AUDIT) is False
    with pytest.raises(TypeError):
        opts.plugin_options["audit"] = False  # type: ignore[index]
    assert AttachOptions(plugin_options={"a": 1}) == AttachOptions(plugin_options={"a": 1})


def test_hook_portable_register_commands(register_plugin, portable_cli, portable_root):
    register_plugin(Commands(), "vendor-cmds")
    code, out, err = portable_cli("vendor-keys", "--all")
    assert (code, out, err) == (0, f"keys below {portable_root} all=True\n", "")
    code, out, err = portable_cli("--help")
    assert code == 0, err
    listed = out[out.index("Commands added by plugins:") :]
    assert "vendor-keys  List the vendor keys this host trusts." in listed
    assert portable_cli("vendor-keys", "--help")[1].startswith("Usage: portable vendor-keys")
    assert portable_cli("no-such-verb")[0] == 2


def test_command_names_conflict(register_plugin, portable_cli, portable_registry):
    register_plugin(Commands(), "one")
    register_plugin(Commands(), "two")
    code, out, err = portable_cli("vendor-keys")
    assert (code, err) == (
        1,
        "portable: error: command 'vendor-keys' is added by two plugins: plugin 'one' and "
        "plugin 'two'\n",
    )
    portable_registry.unregister("two")

    class Attach:
        @hookimpl
        def portable_register_commands(self, cli: click.Group) -> None:
            cli.add_command(click.Command("attach"))

    register_plugin(Attach(), "attacher")
    code, out, err = portable_cli("--help")
    assert code == 1 and "command 'attach' of plugin 'attacher' is one of portable's own" in err


def test_a_plugin_failing_to_register_commands_is_named(register_plugin, portable_cli):
    class Broken:
        @hookimpl
        def portable_register_commands(self, cli: click.Group) -> None:
            raise RuntimeError("no")

    register_plugin(Broken(), "broken")
    code, out, err = portable_cli("--help")
    assert (code, err) == (
        1,
        "portable: error: plugin 'broken' failed in portable_register_commands: RuntimeError: no "
        "(report this to the plugin's author)\n",
    )


def test_builtins_add_options_but_no_commands(tmp_path):
    """``portable --help`` builds no registry without third-party plugins: it relies on this."""
    reg = registry.make_registry(root=tmp_path, load_entrypoints=False)
    assert not reg.pm.hook.portable_register_commands.get_hookimpls()
    names = {
        spec.name
        for impl in reg.pm.hook.portable_cli_options.get_hookimpls()
        for spec in impl.function()
    }
    assert names == {"--netns", "--netns-subnet", "--max-exposure"}
    # group.py's copies of what it must not import
    assert set(CLI_OPTION_VERBS) == group.PLUGIN_OPTION_VERBS
    assert group.ENTRY_POINT_GROUP == registry.ENTRY_POINT_GROUP


def test_help_loads_no_plugins_without_third_party_ones():
    if entrypoints.find(registry.ENTRY_POINT_GROUP):
        pytest.skip("third-party plugins are installed here")
    code = (
        "import sys\n"
        "from portable.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('pluggy', 'portable.plugin.registry', 'portable.plugin.types')"
        " if m in sys.modules), file=sys.stderr)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stderr == "[]\n"


def docs_section() -> str:
    text = DOCS.read_text()
    start = text.index("## Adding options and commands")
    return text[start : text.index("\n## ", start + 1)]


def test_the_docs_example_runs(register_plugin, portable_cli, make_image):
    """docs/plugins.md's example plugin, as printed there, and the output it shows."""
    section = docs_section()
    code = section[section.index("```python\n") + 10 : section.index("\n```\n")]
    plugin = types.ModuleType("portable_myvendor")
    exec(compile(code, "docs/plugins.md", "exec"), plugin.__dict__)
    register_plugin(plugin, "myvendor")
    shown = [line for line in section.splitlines() if line.startswith(("portable: ", "  --"))]

    out = " ".join(portable_cli("attach", "--help")[1].split())
    assert " ".join(shown[0].split()) in out
    signed = make_image(
        "foo_1",
        os_release="ID=x\nVENDOR_KEY=0123456789abcdef\n",
        units={"foo.service": service_unit()},
    )
    unsigned = make_image("bar_1", units={"bar.service": service_unit()})
    assert portable_cli("attach", "--signed-by=nope", signed)[::2] == (2, shown[1] + "\n")
    code, out, err = portable_cli("attach", "--signed-by=0123456789abcdef", unsigned)
    assert code == 1 and "/srv/images/bar_1 is not signed with key 0123456789abcdef" in err
    code, out, err = portable_cli("attach", "-q", "--signed-by=0123456789abcdef", signed)
    assert code == 0, err
    code, out, err = portable_cli("detach", "-q", "--audit", signed)
    assert code == 0 and "audit: detaching /srv/images/foo_1: foo.service\n" in err
    assert portable_cli("vendor-keys")[1] == "0123456789abcdef  Example Corp\n"
