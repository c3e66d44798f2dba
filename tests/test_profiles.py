"""The built-in profile plugins: the four systemd profiles, and those in systemd's directories."""

from __future__ import annotations

import importlib
import os
import threading
from pathlib import Path

import pytest
from helpers.roots import registry_for as registry

from portable.errors import PluginConflict
from portable.plugin.hookspecs import hookimpl
from portable.plugin.types import Profile, ProfileDropin
from portable.plugins.profiles import builtin, systemd_dirs
from portable.systemd.host import Host
from portable.systemd.version import detect
from portable.testing.images import mark_systemd_version

HOST_PROFILES = Path("/usr/lib/systemd/portable/profile")
ETC = "etc/systemd/portable/profile"
RUN = "run/systemd/portable/profile"
LOCAL = "usr/local/lib/systemd/portable/profile"
USR = "usr/lib/systemd/portable/profile"


def write(root: Path, rel: str, text: str | bytes = "[Service]\nPrivateTmp=yes\n") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_bytes(text.encode())
    return path


def settings(profile: Profile) -> list[str]:
    dropin = profile.dropin_for("service")
    assert dropin is not None
    # Join continuation lines, as systemd's parser does, then keep settings only.
    joined = dropin.text.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if "=" in line and line[0] not in "#;"]


def dir_profiles(root: Path) -> dict[str, Profile]:
    return {p.name: p for p in systemd_dirs.portable_profiles(root=root)}


# --- built-ins -----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [252, 257])
def test_builtins_without_host_files_are_bundled_copies(tmp_path: Path, version: int) -> None:
    """A root without systemd's profile files gets the bundled copy of its systemd, copied."""
    mark_systemd_version(tmp_path, version)
    profiles = registry(tmp_path).profiles()
    for name in builtin.NAMES:
        reg = profiles[name]
        assert reg.plugin == "portable.plugins.profiles.builtin"
        profile = reg.spec
        assert profile.origin == "built-in"
        assert profile.priority == 0
        assert list(profile.dropins) == ["service"]
        dropin = profile.dropins["service"]
        assert dropin.path is None  # copied into 10-profile.conf, never linked into the package
        bundled = builtin.data_path(name, version)
        assert bundled.parent.parent.name == f"systemd{version}"
        assert dropin.text.encode() == bundled.read_bytes()
        assert "\n" not in profile.description and profile.description
    assert profiles["default"].spec.description.startswith('The "default" security profile')


@pytest.mark.parametrize(("version", "bundled"), [(251, 252), (254, 252), (256, 252), (258, 257)])
def test_unknown_versions_get_the_nearest_known_below(version: int, bundled: int) -> None:
    assert builtin.data_path("strict", version) == builtin.data_path("strict", bundled)


def test_bundled_257_profiles_bind_log_sockets_and_drop_private_tmp() -> None:
    """systemd 257's change to three of the four profiles (the spec's 252/257 differences)."""
    for name in ("default", "nonetwork", "strict"):
        old = builtin.data_path(name, 252).read_text().splitlines()
        new = builtin.data_path(name, 257).read_text().splitlines()
        assert "BindLogSockets=yes" in new and "BindLogSockets=yes" not in old
        assert "PrivateTmp=yes" in old and "PrivateTmp=yes" not in new
        binds = "BindReadOnlyPaths=/dev/log /run/systemd/journal/socket /run/systemd/journal/stdout"
        assert [line for line in old if line not in (binds, "PrivateTmp=yes")] == [
            line for line in new if line != "BindLogSockets=yes"
        ]
    trusted = "trusted"
    assert (
        builtin.data_path(trusted, 252).read_bytes() == builtin.data_path(trusted, 257).read_bytes()
    )


@pytest.mark.skipif(not HOST_PROFILES.is_dir(), reason="systemd-container is not installed")
@pytest.mark.parametrize("name", builtin.NAMES)
def test_builtins_are_the_hosts_own_files(name: str) -> None:
    """Where the host's systemd ships the profile, that file is used (and linked to)."""
    profile = {p.name: p for p in builtin.portable_profiles(root=Path("/"))}[name]
    host_file = HOST_PROFILES / name / "service.conf"
    dropin = profile.dropins["service"]
    assert dropin.text.encode() == host_file.read_bytes()
    assert dropin.path == host_file
    assert profile.origin == str(host_file)


@pytest.mark.parametrize("version", [252, 257])
def test_bundled_copies_byte_identical_to_systemd(version: int) -> None:
    """The copies are systemd's files; the host's own are compared where it runs that version."""
    if not HOST_PROFILES.is_dir() or detect(Host()).major != version:
        pytest.skip(f"this machine's systemd is not {version} (the box tests compare it there)")
    for name in builtin.NAMES:
        host_file = HOST_PROFILES / name / "service.conf"
        assert builtin.data_path(name, version).read_bytes() == host_file.read_bytes()


@pytest.mark.parametrize("version", [252, 257])
def test_builtin_settings_sanity(tmp_path: Path, version: int) -> None:
    mark_systemd_version(tmp_path, version)
    profiles = {p.name: p for p in builtin.portable_profiles(root=tmp_path)}
    strict = settings(profiles["strict"])
    assert "PrivateNetwork=yes" in strict
    assert "CapabilityBoundingSet=" in strict
    assert "NoNewPrivileges=yes" in strict
    assert "RestrictAddressFamilies=AF_UNIX" in strict
    trusted = settings(profiles["trusted"])
    assert not any(s.startswith("DynamicUser=") for s in trusted)
    assert "BindPaths=/run" in trusted
    nonetwork = settings(profiles["nonetwork"])
    assert "PrivateNetwork=yes" in nonetwork and "IPAddressDeny=any" in nonetwork
    assert not any("CAP_NET_" in s for s in nonetwork)
    default = settings(profiles["default"])
    assert "DynamicUser=yes" in default
    assert not any(s.startswith("PrivateNetwork=") for s in default)
    caps = next(s for s in default if s.startswith("CapabilityBoundingSet="))
    assert len(caps.split("=", 1)[1].split()) == 19


def test_builtins_not_read_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    # The data files are read by the hook, not when the module is imported.
    def refuse(self: Path) -> bytes:
        raise AssertionError(f"read {self} at import")

    monkeypatch.setattr(Path, "read_bytes", refuse)
    importlib.reload(builtin)
    importlib.reload(systemd_dirs)


# --- systemd's directories -----------------------------------------------------------------------


def test_admin_profile_found_with_host_view_paths(tmp_path: Path) -> None:
    write(tmp_path, f"{ETC}/custom/service.conf", "# My custom profile\n[Service]\nX=1\n")
    reg = registry(tmp_path).profile("custom")
    assert reg.plugin == "portable.plugins.profiles.systemd_dirs"
    profile = reg.spec
    assert profile.priority == 30
    assert profile.origin == "/etc/systemd/portable/profile/custom"
    assert profile.description == "My custom profile"
    dropin = profile.dropins["service"]
    assert dropin.path == Path("/etc/systemd/portable/profile/custom/service.conf")
    assert dropin.text == "# My custom profile\n[Service]\nX=1\n"


@pytest.mark.parametrize(("rel", "priority"), [(ETC, 30), (RUN, 20), (LOCAL, 10), (USR, -10)])
def test_priority_by_directory(tmp_path: Path, rel: str, priority: int) -> None:
    write(tmp_path, f"{rel}/custom/service.conf", "[Service]\n")
    profile = dir_profiles(tmp_path)["custom"]
    assert profile.priority == priority
    assert profile.description == f"profile from /{rel}"


def test_etc_overrides_builtin_default(tmp_path: Path) -> None:
    write(tmp_path, f"{ETC}/default/service.conf", "[Service]\nDynamicUser=no\n")
    reg = registry(tmp_path).profile("default")
    assert reg.plugin == "portable.plugins.profiles.systemd_dirs"
    assert reg.spec.dropins["service"].text == "[Service]\nDynamicUser=no\n"


def test_usr_lib_copy_of_a_builtin_is_what_default_uses(tmp_path: Path) -> None:
    """systemd's own /usr/lib file of a built-in name is the profile (as portablectl)."""
    write(tmp_path, f"{USR}/default/service.conf", "[Service]\nDynamicUser=no\n")
    reg = registry(tmp_path).profile("default")
    assert reg.plugin == "portable.plugins.profiles.builtin"
    assert reg.spec.origin == "/usr/lib/systemd/portable/profile/default/service.conf"
    dropin = reg.spec.dropins["service"]
    assert dropin.text == "[Service]\nDynamicUser=no\n"
    assert dropin.path == Path("/usr/lib/systemd/portable/profile/default/service.conf")
    # the other names, not shipped in this tree, are the bundled copies
    assert registry(tmp_path).profile("strict").spec.origin == "built-in"


@pytest.mark.skipif(not HOST_PROFILES.is_dir(), reason="systemd-container is not installed")
def test_real_root_builtins_are_the_hosts_files() -> None:
    profiles = registry(Path("/")).profiles()
    for name in builtin.NAMES:
        assert profiles[name].spec.origin == f"{HOST_PROFILES}/{name}/service.conf"


def test_first_directory_wins(tmp_path: Path) -> None:
    write(tmp_path, f"{ETC}/custom/service.conf", "# from etc\n")
    write(tmp_path, f"{RUN}/custom/service.conf", "# from run\n")
    profile = registry(tmp_path).profile("custom").spec
    assert profile.origin == "/etc/systemd/portable/profile/custom"
    assert profile.priority == 30
    assert profile.dropins["service"].text == "# from etc\n"


def test_per_unit_type_lookup_falls_through(tmp_path: Path) -> None:
    # systemd looks each <type>.conf up separately: /etc's socket.conf, /usr/lib's service.conf.
    write(tmp_path, f"{ETC}/custom/socket.conf", "[Socket]\n")
    write(tmp_path, f"{USR}/custom/service.conf", "# vendor\n[Service]\n")
    profile = dir_profiles(tmp_path)["custom"]
    assert profile.priority == 30
    assert profile.dropins["socket"].path == Path(f"/{ETC}/custom/socket.conf")
    assert profile.dropins["service"].path == Path(f"/{USR}/custom/service.conf")
    assert profile.description == "vendor"


def test_only_socket_conf(tmp_path: Path) -> None:
    write(tmp_path, f"{RUN}/sock/socket.conf", "; socket limits\n[Socket]\nBacklog=8\n")
    profile = dir_profiles(tmp_path)["sock"]
    assert list(profile.dropins) == ["socket"]
    assert isinstance(profile.dropins["socket"], ProfileDropin)
    assert profile.dropin_for("service") is None
    assert profile.description == "socket limits"


def test_empty_profile_directory_is_a_profile(tmp_path: Path) -> None:
    (tmp_path / ETC / "empty").mkdir(parents=True)
    profile = registry(tmp_path).profile("empty").spec
    assert dict(profile.dropins) == {}
    assert profile.description == "profile from /etc/systemd/portable/profile"


def test_symlinked_dropin_is_followed(tmp_path: Path) -> None:
    target = write(tmp_path, "srv/shared.conf", "[Service]\nPrivateTmp=yes\n")
    (tmp_path / ETC / "linked").mkdir(parents=True)
    (tmp_path / ETC / "linked" / "service.conf").symlink_to(target)
    dropin = dir_profiles(tmp_path)["linked"].dropins["service"]
    assert dropin.text == "[Service]\nPrivateTmp=yes\n"
    assert dropin.path == Path(f"/{ETC}/linked/service.conf")


def test_bytes_preserved(tmp_path: Path) -> None:
    data = b"# caf\xe9 latin-1\r\n[Service]\r\nPrivateTmp=yes\r\n"
    write(tmp_path, f"{ETC}/bytes/service.conf", data)
    text = dir_profiles(tmp_path)["bytes"].dropins["service"].text
    assert text.encode("utf-8", "surrogateescape") == data


def test_hidden_backup_invalid_and_files_skipped(tmp_path: Path) -> None:
    for name in (".hidden", "old~", "prof.dpkg-old", "prof.bak"):
        write(tmp_path, f"{ETC}/{name}/service.conf")
    write(tmp_path, f"{ETC}/plainfile", "not a directory\n")
    write(tmp_path, f"{ETC}/good/service.conf")
    assert set(dir_profiles(tmp_path)) == {"good"}


def test_invalid_names_skipped_with_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, f"{ETC}/ctl\x01/service.conf")
    (tmp_path / ETC / os.fsdecode(b"bad\xff")).mkdir()
    write(tmp_path, f"{ETC}/good/service.conf")
    assert set(dir_profiles(tmp_path)) == {"good"}
    err = capsys.readouterr().err
    assert "ctl\\x01" in err and "bad\\udcff" in err and "not a valid name" in err


def test_masked_profile_skipped_and_hides_later_dirs(tmp_path: Path) -> None:
    (tmp_path / ETC).mkdir(parents=True)
    (tmp_path / ETC / "masked").symlink_to("/dev/null")
    write(tmp_path, f"{RUN}/masked/service.conf")
    write(tmp_path, f"{ETC}/emptymask", "")
    write(tmp_path, f"{USR}/emptymask/service.conf")
    assert dir_profiles(tmp_path) == {}


def test_mask_in_later_dir_does_not_hide_earlier(tmp_path: Path) -> None:
    write(tmp_path, f"{ETC}/custom/service.conf", "# mine\n")
    (tmp_path / RUN).mkdir(parents=True)
    (tmp_path / RUN / "custom").symlink_to("/dev/null")
    assert dir_profiles(tmp_path)["custom"].dropins["service"].text == "# mine\n"


def run_with_timeout(root: Path) -> dict[str, Profile]:
    """Call the hook in a thread so a regression that blocks fails the test instead of hanging."""
    result: dict[str, Profile] = {}
    thread = threading.Thread(target=lambda: result.update(dir_profiles(root)), daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "portable_profiles() blocked"
    return result


def test_fifo_dropin_skipped_with_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / ETC / "fifo").mkdir(parents=True)
    os.mkfifo(tmp_path / ETC / "fifo" / "service.conf")
    write(tmp_path, f"{ETC}/fifo/socket.conf", "[Socket]\n")
    profile = run_with_timeout(tmp_path)["fifo"]
    assert list(profile.dropins) == ["socket"]
    err = capsys.readouterr().err
    assert f"/{ETC}/fifo/service.conf" in err and "not a regular file" in err
    assert err.startswith("portable: warning: ")


def test_device_dropin_skipped_with_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / ETC / "dev").mkdir(parents=True)
    (tmp_path / ETC / "dev" / "service.conf").symlink_to("/dev/zero")
    assert dict(run_with_timeout(tmp_path)["dev"].dropins) == {}
    assert "not a regular file" in capsys.readouterr().err


def test_unusable_dropin_does_not_fall_back(tmp_path: Path) -> None:
    # The first existing file is the one systemd uses; a later one must not stand in for it.
    (tmp_path / ETC / "custom").mkdir(parents=True)
    os.mkfifo(tmp_path / ETC / "custom" / "service.conf")
    write(tmp_path, f"{USR}/custom/service.conf")
    assert dict(run_with_timeout(tmp_path)["custom"].dropins) == {}


def test_oversized_dropin_skipped_with_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    limit = systemd_dirs.MAX_DROPIN_SIZE
    write(tmp_path, f"{ETC}/big/service.conf", b"#" * (limit + 1))
    write(tmp_path, f"{ETC}/big/socket.conf", b"#" * limit)
    profile = dir_profiles(tmp_path)["big"]
    assert list(profile.dropins) == ["socket"]
    assert len(profile.dropins["socket"].text) == limit
    err = capsys.readouterr().err
    assert f"/{ETC}/big/service.conf" in err and "larger than" in err


def test_missing_root_dirs_give_no_profiles(tmp_path: Path) -> None:
    assert dir_profiles(tmp_path) == {}


# --- resolution in the registry ------------------------------------------------------------------


class _Throwaway:
    @hookimpl
    def portable_profiles(self) -> list[Profile]:
        return [
            Profile(
                name="default",
                description="impostor",
                dropins={"service": ProfileDropin(text="[Service]\n")},
            )
        ]


def test_equal_priority_is_a_conflict_naming_both(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    reg.register(_Throwaway(), "throwaway")
    with pytest.raises(PluginConflict) as info:
        reg.profiles()
    message = str(info.value)
    assert "'default'" in message
    assert "portable.plugins.profiles.builtin" in message and "throwaway" in message


def test_admin_profile_settles_plugin_vs_builtin(tmp_path: Path) -> None:
    # A higher-priority /etc profile wins over both, so equal-priority plugins don't matter.
    write(tmp_path, f"{ETC}/default/service.conf", "# admin\n")
    reg = registry(tmp_path)
    reg.register(_Throwaway(), "throwaway")
    assert reg.profile("default").spec.description == "admin"
