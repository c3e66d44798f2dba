"""Profiles without Python: TOML files, extends, --profile PATH, show/export, listings."""

from __future__ import annotations

import json
import os
import tomllib

import pytest
from helpers.runners import run_main as run

from portable.engine.attach import attach
from portable.errors import PortableError, UnknownProfile
from portable.plugin.registry import make_registry
from portable.plugin.types import AttachOptions
from portable.systemd.host import Host
from portable.systemd.unitfile import parse
from portable.testing.images import make_directory_image, mark_systemd_version, service_unit


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    (r / "etc/portable/profiles").mkdir(parents=True)
    make_directory_image(
        r / "srv/foo_1", busybox=False, os_release="ID=x\n", units={"foo.service": service_unit()}
    )
    return r


def write(root, name, text):
    (root / "etc/portable/profiles" / name).write_text(text)


def settings(profile, unit_type="service"):
    section = {"service": "Service"}[unit_type]
    return parse(profile.dropins[unit_type].text)[section]


def test_toml_profile_extends_builtin(root):
    write(
        root,
        "web.toml",
        """
description = "strict, but it may use the network"
extends = "strict"
[service]
remove = ["PrivateNetwork", "IPAddressDeny"]
[service.set]
RestrictAddressFamilies = "AF_UNIX AF_INET AF_INET6"
BindReadOnlyPaths = ["/etc/machine-id", "-/etc/resolv.conf"]
""",
    )
    reg = make_registry(root=root, load_entrypoints=False)
    web = reg.profile("web")
    assert web.plugin == "portable.plugins.profiles.toml_files"
    assert web.spec.description == "strict, but it may use the network"
    pairs = settings(web.spec)
    keys = [k for k, _ in pairs]
    assert "PrivateNetwork" not in keys and "IPAddressDeny" not in keys
    assert ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6") in pairs
    assert ("RestrictAddressFamilies", "AF_UNIX") not in pairs
    assert [v for k, v in pairs if k == "BindReadOnlyPaths"] == [
        "/etc/machine-id",
        "-/etc/resolv.conf",
    ]
    assert ("TasksMax", "4") in pairs and ("DynamicUser", "yes") in pairs  # kept from strict
    assert web.spec.dropins["service"].path is None  # generated: attach copies it


def test_toml_profile_overrides_and_extends_the_profile_of_its_name(root):
    write(root, "strict.toml", 'extends = "strict"\n[service.set]\nTasksMax = "16"\n')
    reg = make_registry(root=root, load_entrypoints=False)
    strict = reg.profile("strict").spec
    assert ("TasksMax", "16") in settings(strict)
    assert ("TasksMax", "4") not in settings(strict)
    assert ("PrivateNetwork", "yes") in settings(strict)
    assert strict.origin == "/etc/portable/profiles/strict.toml"


def test_toml_profile_without_extends(root):
    write(root, "tiny.toml", '[service.set]\nDynamicUser = "yes"\nPrivateNetwork = true\n')
    with pytest.raises(PortableError):  # booleans are not strings: a clear error
        make_registry(root=root, load_entrypoints=False).profile("tiny")
    write(root, "tiny.toml", '[service.set]\nDynamicUser = "yes"\nPrivateNetwork = "yes"\n')
    tiny = make_registry(root=root, load_entrypoints=False).profile("tiny").spec
    assert settings(tiny) == [("DynamicUser", "yes"), ("PrivateNetwork", "yes")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('extends = "nope"\n', "extends unknown profile 'nope'"),
        ('extends = "loop2"\n', "in a loop"),
    ],
)
def test_unusable_extends(root, text, message):
    write(root, "loop1.toml", text)
    write(root, "loop2.toml", 'extends = "loop1"\n')
    reg = make_registry(root=root, load_entrypoints=False)
    assert "loop1" not in reg.profiles()
    with pytest.raises(UnknownProfile, match=message):
        reg.profile("loop1")
    assert "strict" in reg.profiles()  # the others still work


@pytest.mark.parametrize(
    "text",
    [
        "not toml at all [",
        'colour = "red"\n',
        "[mount]\n",
        '[service]\nset = "x"\n',
        '[service.set]\n"Bad Key" = "x"\n',
        '[service.set]\nX = "a\\nb"\n',
    ],
)
def test_bad_toml_files_are_skipped_with_a_warning(root, capsys, text):
    write(root, "bad.toml", text)
    reg = make_registry(root=root, load_entrypoints=False)
    assert "bad" not in reg.profiles() and "default" in reg.profiles()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "/etc/portable/profiles/bad.toml" in err


def test_profile_by_path_toml_and_dropin(root, tmp_path):
    d = root / "srv/profiles"
    d.mkdir(parents=True)
    (d / "mine.toml").write_text('extends = "default"\n[service.set]\nNice = "5"\n')
    (d / "service.conf").write_text("[Service]\nPrivateNetwork=yes\n")
    reg = make_registry(root=root, load_entrypoints=False)
    mine = reg.profile("/srv/profiles/mine.toml").spec
    assert ("Nice", "5") in settings(mine) and ("DynamicUser", "yes") in settings(mine)
    dropin = reg.profile("/srv/profiles/service.conf").spec
    assert dropin.name == "profiles" and dropin.dropins["service"].path is not None
    assert str(dropin.dropins["service"].path) == "/srv/profiles/service.conf"
    # attach links a drop-in given by path (it exists on this host), copies a TOML one
    attach(
        "/srv/foo_1",
        AttachOptions(profile="/srv/profiles/service.conf", runtime=True),
        host=Host(root),
        registry=reg,
    )
    link = root / "run/systemd/system.attached/foo.service.d/10-profile.conf"
    assert os.readlink(link) == "/srv/profiles/service.conf"
    with pytest.raises(PortableError, match="No such file"):
        reg.profile("/srv/profiles/missing.toml")
    os.mkfifo(d / "fifo.conf")
    with pytest.raises(PortableError, match="not a regular file"):
        reg.profile("/srv/profiles/fifo.conf")


def test_export_round_trips(root):
    reg = make_registry(root=root, load_entrypoints=False)
    from portable.profiles.files import profile_to_toml

    for name in ("default", "nonetwork", "strict", "trusted"):
        text = profile_to_toml(reg.profile(name).spec)
        assert tomllib.loads(text)["description"]
        write(root, f"copy-{name}.toml", text)
    again = make_registry(root=root, load_entrypoints=False)
    for name in ("default", "nonetwork", "strict", "trusted"):
        assert settings(again.profile(f"copy-{name}").spec) == settings(reg.profile(name).spec)


# systemd-analyze security --offline=yes --profile=P on a bare service, per systemd version
EXPOSURES = {
    252: {"default": "3.3 OK", "nonetwork": "2.2 OK", "strict": "1.0 OK", "trusted": "9.4 UNSAFE"},
    257: {
        "default": "3.1 OK",
        "nonetwork": "2.0 OK",
        "strict": "0.9 SAFE",
        "trusted": "9.2 UNSAFE",
    },
}


@pytest.mark.parametrize("systemd", [252, 257])
def test_cli_profiles_and_show_and_export(root, capsys, tmp_path, systemd):
    mark_systemd_version(root, systemd)  # the root's systemd scores the profiles
    write(root, "web.toml", 'description = "web"\nextends = "strict"\n')
    code, out, err = run(["--root", str(root), "profiles"], capsys)
    assert code == 0
    assert "web" in out and "/etc/portable/profiles/web.toml" in out and "built-in" in out
    code, out, err = run(["--root", str(root), "profiles", "--json"], capsys)
    names = {p["name"]: p for p in json.loads(out)["profiles"]}
    assert names["strict"]["source"] == "built-in"
    exposures = {
        n: f"{names[n]['exposure']:.1f} {names[n]['verdict']}"
        for n in ("default", "nonetwork", "strict", "trusted")
    }
    assert exposures == EXPOSURES[systemd]
    assert names["web"]["source"] == "/etc/portable/profiles/web.toml"
    code, out, err = run(["--root", str(root), "profile", "show", "web"], capsys)
    assert code == 0 and "Profile: web" in out and "TasksMax=4" in out
    target = tmp_path / "out.toml"
    code, out, err = run(
        ["--root", str(root), "profile", "export", "web", "-o", str(target)], capsys
    )
    assert code == 0 and tomllib.loads(target.read_text())["service"]["set"]["TasksMax"] == "4"
    code, out, err = run(["--root", str(root), "profile", "show", "nope"], capsys)
    assert code == 1 and err.startswith("portable: error: unknown profile 'nope'")


def test_cli_plugins_listing(root, capsys):
    code, out, err = run(["--root", str(root), "plugins", "--all", "--json"], capsys)
    rows = {r["name"]: r for r in json.loads(out)["plugins"]}
    d = rows["portable.plugins.image_formats.directory"]
    assert d["status"] == "active" and d["formats"] == ["directory"] and d["builtin"]
    assert rows["portable.plugins.profiles.builtin"]["profiles"] == [
        "default",
        "nonetwork",
        "strict",
        "trusted",
    ]
    code, out, err = run(["--root", str(root), "plugins"], capsys)
    assert code == 0 and "No third-party plugins" in out
