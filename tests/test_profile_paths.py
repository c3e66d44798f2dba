"""``--profile=PATH`` must name a profile (issue 16, hole 4).

``--profile /etc/passwd`` used to attach with no sandbox at all, and ``--profile`` of a 0600
file with ``--copy=copy`` wrote its content into a world-readable ``10-profile.conf``. Now a
file given by path must parse as a profile (a TOML profile that sets something, or a drop-in
with a setting systemd reads for a service) or it is refused with one line naming it and why,
and nothing is written: each refusal below leaves the ``--root`` tree exactly as it was. A copy
of a profile file is never more readable than the file; systemd's own profiles are copied with
0644, as portablectl 257 does (``copy_file_atomic(from, dropin, 0644, ...)``, spec 3.6).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from portable.plugin.registry import make_registry
from portable.testing.images import service_unit

ATTACHED = "etc/systemd/system.attached/foo.service.d/10-profile.conf"

Cli = Callable[..., tuple[int, str, str]]


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes | str]]:
    """Every path below ``root``: mode, size and content (or link target)."""
    out: dict[str, tuple[int, int, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath, name)
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                content: bytes | str = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                content = p.read_bytes()
            else:
                content = ""
            out[str(p.relative_to(root))] = (st.st_mode, st.st_size, content)
    return out


@pytest.fixture
def image(make_image: Callable[..., str], portable_root: Path) -> str:
    (portable_root / "srv/profiles").mkdir(parents=True)
    return make_image("foo_1", units={"foo.service": service_unit()})


def put(root: Path, rel: str, content: str | bytes, mode: int = 0o644) -> str:
    path = root / rel.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    path.chmod(mode)
    return rel


NOT_A_DROPIN = "not a systemd drop-in for services"

BAD_FILES = [
    # (path inside the root, content, what the one line says)
    ("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\n", NOT_A_DROPIN + ": no setting in"),
    ("/etc/shadow", "root:$6$secret-hash:19000:0:99999:7:::\n", NOT_A_DROPIN),
    ("/srv/profiles/empty.conf", "", NOT_A_DROPIN + ": no setting in"),
    ("/srv/profiles/header.conf", "[Service]\n# nothing set\n", NOT_A_DROPIN),
    ("/srv/profiles/no-section.conf", "PrivateNetwork=yes\n", NOT_A_DROPIN),
    ("/srv/profiles/manager.conf", "[Manager]\nDefaultTasksMax=4\n", "all outside [Service]"),
    ("/srv/profiles/socket.conf", "[Socket]\nListenStream=80\n", "all outside"),
    ("/srv/profiles/extension.conf", "[X-Portable]\nNetworkNamespace=yes\n", "all outside"),
    # a TOML profile under another name is read as a drop-in: the line says how to name it
    ("/srv/profiles/mine", '[service.set]\nPrivateNetwork = "yes"\n', "ends in .toml"),
    ("/srv/profiles/latin1.conf", b"[Service]\nUser=j\xf6rg\n", "not UTF-8 text (byte 16)"),
    ("/srv/profiles/long.conf", "#" * (1024 * 1024), "line 1: the line is longer"),
    ("/srv/profiles/huge.conf", "[Service]\n" + "#\n" * (600 * 1024), "larger than 1048576"),
    ("/srv/profiles/broken.toml", "not toml at all [", "profile file"),
    ("/srv/profiles/colour.toml", 'colour = "red"\n', "unknown key 'colour'"),
    ("/srv/profiles/empty.toml", "", "sets nothing"),
    ("/srv/profiles/described.toml", 'description = "x"\n', "sets nothing"),
    ("/srv/profiles/removes.toml", '[service]\nremove = ["User"]\n', "sets nothing"),
    ("/srv/profiles/mount.toml", '[mount.set]\nWhat = "/"\n', "unknown key 'mount'"),
]


@pytest.mark.parametrize("copy", ["auto", "copy", "symlink", "mixed"])
@pytest.mark.parametrize(("path", "content", "message"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_a_file_that_is_no_profile_is_refused_and_nothing_written(
    portable_root: Path,
    portable_cli: Cli,
    image: str,
    path: str,
    content: str | bytes,
    message: str,
    copy: str,
) -> None:
    put(portable_root, path, content, 0o600)
    before = snapshot(portable_root)
    code, out, err = portable_cli("attach", f"--copy={copy}", f"--profile={path}", image)
    assert code == 1 and out == ""
    assert err.startswith(f"portable: error: profile file {path}: ") and err.count("\n") == 1
    assert message in err
    # the line names the file and the reason, never what is in it (it may be anyone's file)
    assert "root:x" not in err and "secret" not in err and "ListenStream" not in err
    assert snapshot(portable_root) == before


@pytest.mark.parametrize(
    ("path", "make", "message"),
    [
        ("/srv/profiles/missing.conf", None, "No such file or directory"),
        ("/srv/profiles/dir.conf", os.mkdir, "not a regular file"),
        ("/srv/profiles/fifo.conf", os.mkfifo, "not a regular file"),
    ],
)
def test_a_path_that_is_no_file_is_refused_and_nothing_written(
    portable_root: Path,
    portable_cli: Cli,
    image: str,
    path: str,
    make: Callable[[Path], None] | None,
    message: str,
) -> None:
    if make is not None:
        make(portable_root / path.lstrip("/"))
    before = snapshot(portable_root)
    code, out, err = portable_cli("attach", "--copy=copy", f"--profile={path}", image)
    assert (code, out) == (1, "")
    assert err == f"portable: error: profile file {path}: {message}\n"
    assert snapshot(portable_root) == before


def test_security_refuses_the_same_files(
    portable_root: Path, portable_cli: Cli, image: str
) -> None:
    put(portable_root, "/etc/passwd", "root:x:0:0:root:/root:/bin/bash\n")
    code, out, err = portable_cli("security", "--profile=/etc/passwd", image)
    assert code == 1 and err.count("\n") == 1 and "profile file /etc/passwd: " in err


GOOD_DROPIN = "# mine\n[Service]\nPrivateNetwork=yes\nEnvironment=TOKEN=s3cret\n"


@pytest.mark.parametrize(
    "content",
    [
        GOOD_DROPIN,
        "[Unit]\nDescription=only a [Unit] setting is still a drop-in for services\n",
        "[Install]\n\n[Service]\nPrivateTmp=yes\r\n",
        "[Service]\nExecStart=/bin/true \\\n  --continued\n",
    ],
    ids=["service", "unit-only", "crlf", "continued"],
)
def test_a_dropin_is_linked_by_default(
    portable_root: Path, portable_cli: Cli, image: str, content: str
) -> None:
    rel = put(portable_root, "/srv/profiles/mine.conf", content, 0o600)
    code, out, err = portable_cli("attach", f"--profile={rel}", image)
    assert code == 0, err
    assert os.readlink(portable_root / ATTACHED) == rel  # a link: its content stays 0600


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o604, 0o400, 0o644, 0o755, 0o666], ids=oct)
def test_the_profile_keeps_the_files_permission_bits(portable_root: Path, mode: int) -> None:
    put(portable_root, "/srv/p/mine.conf", GOOD_DROPIN, mode)
    put(portable_root, "/srv/p/mine.toml", 'extends = "strict"\n[service.set]\nNice = "5"\n', mode)
    put(portable_root, "/srv/p/own.toml", '[service.set]\nUser = "nobody"\n', mode)
    reg = make_registry(root=portable_root, load_entrypoints=False)
    for path in ("/srv/p/mine.conf", "/srv/p/mine.toml", "/srv/p/own.toml"):
        dropin = reg.profile(path).spec.dropins["service"]
        assert dropin.mode == mode & 0o644, path  # its bits, never more than 0644
    for name in ("default", "nonetwork", "strict", "trusted"):
        assert reg.profile(name).spec.dropins["service"].mode == 0o644  # as portablectl


SECRET_TOML = '[service.set]\nEnvironment = "TOKEN=s3cret"\n'


@pytest.mark.parametrize(
    ("rel", "content", "copy"),
    [
        ("/srv/profiles/secret.conf", GOOD_DROPIN, "copy"),
        ("/srv/profiles/secret.toml", SECRET_TOML, "auto"),  # a TOML profile is always copied
        ("/srv/profiles/secret.toml", SECRET_TOML, "copy"),
    ],
    ids=["dropin-copy", "toml-auto", "toml-copy"],
)
@pytest.mark.parametrize("mode", [0o600, 0o640], ids=oct)
def test_a_copy_is_never_more_readable_than_the_file(
    portable_root: Path, portable_cli: Cli, image: str, rel: str, content: str, copy: str, mode: int
) -> None:
    put(portable_root, rel, content, mode)
    code, out, err = portable_cli("attach", f"--copy={copy}", f"--profile={rel}", image)
    assert code == 0, err
    copied = portable_root / ATTACHED
    assert not copied.is_symlink() and "TOKEN=s3cret" in copied.read_text()
    assert stat.S_IMODE(copied.lstat().st_mode) == mode


def test_systemds_profiles_are_copied_0644_as_portablectl_does(
    portable_root: Path, portable_cli: Cli, image: str
) -> None:
    # also when the host's file is stricter: portablectl copies every profile with 0644
    put(portable_root, "/etc/systemd/portable/profile/tight/service.conf", GOOD_DROPIN, 0o600)
    for profile in ("strict", "tight"):
        code, out, err = portable_cli("attach", "--copy=copy", f"--profile={profile}", image)
        assert code == 0, err
        copied = portable_root / ATTACHED
        assert not copied.is_symlink() and stat.S_IMODE(copied.lstat().st_mode) == 0o644
        code, out, err = portable_cli("detach", image)
        assert code == 0, err
