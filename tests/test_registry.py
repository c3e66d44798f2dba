"""The plugin registry: built-ins, entry points, conflicts, broken and disabled plugins."""

from __future__ import annotations

import textwrap

import pytest

from portable import hookimpl
from portable.errors import PluginConflict, PluginError, UnknownProfile
from portable.plugin.registry import BUILTIN_PLUGINS, make_registry
from portable.plugin.types import ImageFormat, Profile, ProfileDropin


@pytest.fixture
def fake_dist(tmp_path, monkeypatch):
    """A fake installed distribution with good, failing and blockable entry points."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "good_plugin.py").write_text(
        textwrap.dedent("""
        from portable import hookimpl, Profile, ProfileDropin

        @hookimpl
        def portable_profiles():
            return [Profile(name="vendor-strict", description="from a plugin",
                            dropins={"service": ProfileDropin(text="[Service]\\nUser=x\\n")})]
    """)
    )
    (site / "other_plugin.py").write_text(
        textwrap.dedent("""
        from portable import hookimpl, Profile

        @hookimpl
        def portable_profiles():
            return [Profile(name="other", description="another", dropins={})]
    """)
    )
    (site / "broken_plugin.py").write_text("raise RuntimeError('boom at import')\n")
    info = site / "fake_portable_plugins-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake-portable-plugins\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[portable]\ngood = good_plugin\nbroken = broken_plugin\nother = other_plugin\n"
    )
    monkeypatch.syspath_prepend(str(site))
    for var in (
        "PORTABLE_SERVICES_NO_PLUGINS",
        "PORTABLE_SERVICES_DISABLE_PLUGINS",
        "PORTABLE_SERVICES_STRICT_PLUGINS",
    ):
        monkeypatch.delenv(var, raising=False)
    return site


def test_builtins_registered_through_the_manager(tmp_path):
    reg = make_registry(root=tmp_path, load_entrypoints=False)
    assert [p.name for p in reg.plugins] == list(BUILTIN_PLUGINS)
    assert all(p.builtin and p.status == "active" for p in reg.plugins)
    assert {"directory", "squashfs"} <= {r.spec.name for r in reg.formats()}
    assert {"default", "nonetwork", "strict", "trusted"} <= set(reg.profiles())
    assert reg.profiles()["strict"].plugin == "portable.plugins.profiles.builtin"


def test_entry_points_loaded_and_broken_one_skipped(tmp_path, fake_dist, capsys):
    reg = make_registry(root=tmp_path)
    status = {p.name: p.status for p in reg.plugins}
    assert status["good"] == "active" and status["other"] == "active"
    assert status["broken"] == "failed"
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "broken" in line]
    assert len(warnings) == 1 and "boom at import" in warnings[0]
    assert "fake-portable-plugins" in warnings[0]
    good = reg.profiles()["vendor-strict"]
    assert good.plugin == "good" and good.distribution == "fake-portable-plugins"
    rec = next(p for p in reg.plugins if p.name == "good")
    assert rec.version == "1.0" and rec.hooks == ("portable_profiles",)


def test_strict_mode_makes_a_broken_plugin_fatal(tmp_path, fake_dist, monkeypatch):
    monkeypatch.setenv("PORTABLE_SERVICES_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=r"'broken'.*boom at import"):
        make_registry(root=tmp_path)


def test_unknown_profile_names_failed_plugins(tmp_path, fake_dist):
    reg = make_registry(root=tmp_path)
    with pytest.raises(UnknownProfile) as info:
        reg.profile("nope")
    msg = str(info.value)
    assert "available profiles: " in msg and "strict" in msg and "vendor-strict" in msg
    assert "broken" in msg and "boom at import" in msg


@pytest.mark.parametrize(
    ("how", "expect_good", "expect_other"),
    [
        ("none", "active", "active"),
        ("env-one", "disabled", "active"),
        ("env-both", "disabled", "disabled"),
        ("arg", "disabled", "active"),
        ("no-plugins", None, None),
    ],
)
def test_disabling_plugins(tmp_path, fake_dist, monkeypatch, how, expect_good, expect_other):
    kwargs = {}
    if how == "env-one":
        monkeypatch.setenv("PORTABLE_SERVICES_DISABLE_PLUGINS", "good")
    elif how == "env-both":
        monkeypatch.setenv("PORTABLE_SERVICES_DISABLE_PLUGINS", "good, other,broken")
    elif how == "arg":
        kwargs["disabled"] = ["good"]
    elif how == "no-plugins":
        monkeypatch.setenv("PORTABLE_SERVICES_NO_PLUGINS", "1")
    reg = make_registry(root=tmp_path, **kwargs)
    status = {p.name: p.status for p in reg.plugins}
    assert status.get("good") == expect_good
    assert status.get("other") == expect_other
    assert ("vendor-strict" in reg.profiles()) == (expect_good == "active")


def _format(name):
    return ImageFormat(
        name=name,
        description="x",
        image_type="directory",
        detect=lambda p: False,
        open=lambda p: None,
    )


def test_duplicate_format_is_a_conflict_naming_both(tmp_path):
    class Dup:
        @hookimpl
        def portable_image_formats(self):
            return [_format("directory")]

    reg = make_registry(root=tmp_path, load_entrypoints=False)
    reg.register(Dup(), "dup-plugin", distribution="dup-dist")
    with pytest.raises(PluginConflict) as info:
        reg.formats()
    msg = str(info.value)
    assert "'directory'" in msg and "portable.plugins.image_formats.directory" in msg
    assert "dup-plugin" in msg and "dup-dist" in msg


def test_duplicate_profile_is_a_conflict_naming_both(tmp_path):
    class Dup:
        @hookimpl
        def portable_profiles(self):
            return [Profile(name="strict", description="mine", dropins={})]

    reg = make_registry(root=tmp_path, load_entrypoints=False)
    reg.register(Dup(), "dup-plugin")
    with pytest.raises(PluginConflict, match=r"'strict'.*builtin.*dup-plugin"):
        reg.profiles()


def test_higher_priority_wins_without_conflict(tmp_path):
    class Low:
        @hookimpl
        def portable_profiles(self):
            return [Profile(name="x", description="low", dropins={}, priority=0)]

    class Low2(Low):
        pass

    class High:
        @hookimpl
        def portable_profiles(self):
            return [Profile(name="x", description="high", dropins={}, priority=5)]

    reg = make_registry(root=tmp_path, load_entrypoints=False)
    reg.register(Low(), "low1")
    reg.register(Low2(), "low2")
    reg.register(High(), "high")
    assert reg.profiles()["x"].spec.description == "high"


def test_plugin_raising_in_hook_is_a_plugin_error(tmp_path):
    class Bad:
        @hookimpl
        def portable_profiles(self):
            yield Profile(name="ok", description="", dropins={})
            raise ValueError("generator broke")

    reg = make_registry(root=tmp_path, load_entrypoints=False)
    reg.register(Bad(), "bad")
    with pytest.raises(PluginError, match=r"'bad' failed in portable_profiles.*generator broke"):
        reg.profiles()


def test_plugin_returning_wrong_type(tmp_path):
    class Wrong:
        @hookimpl
        def portable_image_formats(self):
            return ["not a format"]

    reg = make_registry(root=tmp_path, load_entrypoints=False)
    reg.register(Wrong(), "wrong")
    with pytest.raises(PluginError, match="'wrong' returned"):
        reg.formats()


def test_spec_validation_at_construction():
    with pytest.raises(PluginError):
        _format("Bad Name")
    with pytest.raises(PluginError):
        Profile(name="../evil", description="", dropins={})
    with pytest.raises(PluginError):
        Profile(name="a/b", description="", dropins={})
    with pytest.raises(PluginError):
        Profile(name="ok", description="", dropins={"mount": ProfileDropin(text="")})


def test_public_api_importable():
    import portable

    for name in portable.__all__:
        assert getattr(portable, name) is not None
    with pytest.raises(AttributeError):
        portable.nope  # noqa: B018


def test_unknown_image_names_failed_plugins(tmp_path, fake_dist):
    from portable.errors import UnknownImageFormat
    from portable.images.resolve import resolve_image
    from portable.systemd.host import Host

    (tmp_path / "srv").mkdir()
    (tmp_path / "srv/app.tar").write_bytes(b"x" * 600)
    reg = make_registry(root=tmp_path)
    with pytest.raises(UnknownImageFormat) as info:
        resolve_image("/srv/app.tar", host=Host(tmp_path), registry=reg)
    msg = str(info.value)
    assert "a regular file of 600 bytes, not a recognised image" in msg
    assert "plugin 'broken' failed to load: RuntimeError: boom at import" in msg
