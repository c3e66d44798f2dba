"""The Ansible collection (``ansible/``) without a test box: built and installed with
``ansible-galaxy``, its modules run as Ansible runs them (a subprocess reading its arguments as
JSON) against an alternate root (``root:``, as ``portable --root``), and once through
``ansible-playbook`` on localhost for the action plugin that ships an image. Real processes and
files throughout; the service manager half is tested in ``test_box_fleet_ansible.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portable.testing.images import make_directory_image, make_squashfs_image, service_unit

CHECKOUT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GALAXY = BIN / "ansible-galaxy"
PLAYBOOK = BIN / "ansible-playbook"

pytestmark = pytest.mark.skipif(
    not GALAXY.exists(), reason="ansible-core is not installed (pip install -e '.[test]')"
)


@pytest.fixture(scope="module")
def collections(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The collection built from ansible/ and installed, as a user would: the directory to put
    in ANSIBLE_COLLECTIONS_PATH (and PYTHONPATH, for running a module directly)."""
    work = tmp_path_factory.mktemp("collection")
    built = subprocess.run(
        [GALAXY, "collection", "build", CHECKOUT / "ansible", "--output-path", work],
        capture_output=True,
        text=True,
        check=True,
    )
    (tarball,) = work.glob("portable-services-*.tar.gz")
    assert str(tarball) in built.stdout
    subprocess.run(
        [GALAXY, "collection", "install", "-p", work / "installed", tarball],
        capture_output=True,
        text=True,
        check=True,
    )
    return work / "installed"


def collection_dir(collections: Path) -> Path:
    return collections / "ansible_collections/portable/services"


def run_module(
    collections: Path,
    module: str,
    args: dict[str, Any],
    *,
    check: bool = False,
    diff: bool = False,
    tmp: Path,
) -> tuple[int, dict[str, Any]]:
    """Run a module of the installed collection as Ansible's wrapper does: ``python MODULE
    ARGS.json``; returns its exit status and result."""
    args_file = tmp / f"args-{os.urandom(4).hex()}.json"
    args_file.write_text(
        json.dumps(
            {"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": check, "_ansible_diff": diff}}
        )
    )
    proc = subprocess.run(
        [sys.executable, collection_dir(collections) / f"plugins/modules/{module}.py", args_file],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(collections)},
        check=False,
        timeout=120,
    )
    args_file.unlink()
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def tree(root: Path) -> dict[str, str]:
    """Every entry below ``root``: a file's SHA-256, a link's target, ``dir``."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            p = Path(dirpath, name)
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    r = tmp_path / "root"
    for v in (1, 2):
        make_directory_image(
            r / f"srv/app_{v}",
            units={"app.service": service_unit(description=f"app v{v}")},
            busybox=False,
        )
    yield r


def image_module(
    collections: Path, root: Path, tmp: Path, check: bool = False, diff: bool = False, **args: Any
) -> tuple[int, dict[str, Any]]:
    return run_module(
        collections,
        "portable_image",
        {"root": str(root), **args},
        check=check,
        diff=diff,
        tmp=tmp,
    )


def test_attach_then_nothing_to_do(collections: Path, root: Path, tmp_path: Path) -> None:
    code, r = image_module(collections, root, tmp_path, name="/srv/app_1")
    assert code == 0, r
    assert r["changed"] is True
    assert r["operation"] == "attach"
    assert r["units"] == ["app.service"]
    assert r["profile"] == "default"
    assert r["state"] == "attached"
    written = {c["path"] for c in r["changes"]}
    assert "/etc/systemd/system.attached/app.service" in written
    assert (root / "etc/systemd/system.attached/app.service.d/20-portable.conf").is_file()
    before = tree(root)
    code, again = image_module(collections, root, tmp_path, name="/srv/app_1")
    assert code == 0, again
    assert again["changed"] is False
    assert again["operation"] == "none"
    assert again["changes"] == [] and again["files"] == []
    assert again["units"] == ["app.service"] and again["profile"] == "default"
    assert tree(root) == before


def test_check_mode_diff_of_a_new_version_changes_nothing(
    collections: Path, root: Path, tmp_path: Path
) -> None:
    assert image_module(collections, root, tmp_path, name="/srv/app_1")[0] == 0
    before = tree(root)
    code, r = image_module(collections, root, tmp_path, name="/srv/app_2", check=True, diff=True)
    assert code == 0, r
    assert tree(root) == before
    assert r["changed"] is True and r["operation"] == "reattach"
    by_path = {d["after_header"].split(" ")[0]: d for d in r["diff"]}
    unit = by_path["/etc/systemd/system.attached/app.service"]
    assert "Description=app v1" in unit["before"] and "Description=app v2" in unit["after"]
    marker = by_path["/etc/systemd/system.attached/app.service.d/20-portable.conf"]
    assert "RootDirectory=/srv/app_1" in marker["before"]
    assert "RootDirectory=/srv/app_2" in marker["after"]
    actions = {f["path"]: f["action"] for f in r["files"]}
    assert actions["/etc/portables/app_1"] == "remove"
    assert actions["/etc/portables/app_2"] == "create"
    # The profile drop-in is the same for both versions: not in the diff.
    assert "/etc/systemd/system.attached/app.service.d/10-profile.conf" not in actions
    # Without --diff, no diff.
    code, quiet = image_module(collections, root, tmp_path, name="/srv/app_2", check=True)
    assert code == 0 and "diff" not in quiet and quiet["changed"] is True


def test_new_version_and_profile_reattach(collections: Path, root: Path, tmp_path: Path) -> None:
    assert image_module(collections, root, tmp_path, name="/srv/app_1", profile="strict")[0] == 0
    # Another version, no profile given: reattached with the attached version's profile.
    code, r = image_module(collections, root, tmp_path, name="/srv/app_2")
    assert code == 0, r
    assert r["operation"] == "reattach" and r["changed"] is True
    assert r["profile"] == "strict"
    assert r["notes"] == []
    marker = root / "etc/systemd/system.attached/app.service.d/20-portable.conf"
    assert "RootDirectory=/srv/app_2" in marker.read_text()
    assert not (root / "etc/portables/app_1").exists()
    assert image_module(collections, root, tmp_path, name="/srv/app_2")[1]["changed"] is False
    # The same version with another profile: reattached, saying so.
    code, r = image_module(collections, root, tmp_path, name="/srv/app_2", profile="nonetwork")
    assert code == 0, r
    assert r["operation"] == "reattach" and r["profile"] == "nonetwork"
    assert r["files"] == [
        {
            "path": "/etc/systemd/system.attached/app.service.d/10-profile.conf",
            "action": "replace",
        }
    ]
    assert any("'strict' to 'nonetwork'" in n for n in r["notes"])
    profile = root / "etc/systemd/system.attached/app.service.d/10-profile.conf"
    assert '"nonetwork"' in profile.read_text()
    assert (
        image_module(collections, root, tmp_path, name="/srv/app_2", profile="nonetwork")[1][
            "changed"
        ]
        is False
    )


def test_detached(collections: Path, root: Path, tmp_path: Path) -> None:
    code, r = image_module(collections, root, tmp_path, name="app", state="detached")
    assert code == 0 and r["changed"] is False and r["state"] == "detached"
    assert image_module(collections, root, tmp_path, name="/srv/app_1")[0] == 0
    before = tree(root)
    # Any version of the name: app_2 detaches the attached app_1 (check mode first).
    code, r = image_module(
        collections, root, tmp_path, name="/srv/app_2", state="detached", check=True, diff=True
    )
    assert code == 0, r
    assert tree(root) == before
    assert r["changed"] is True and r["operation"] == "detach" and r["units"] == ["app.service"]
    assert r["image"] == "/srv/app_1"
    assert {d["after_header"] for d in r["diff"]} >= {
        "/etc/systemd/system.attached/app.service (removed)"
    }
    code, r = image_module(collections, root, tmp_path, name="/srv/app_2", state="detached")
    assert code == 0, r
    assert r["changed"] is True and r["state"] == "detached"
    assert not (root / "etc/systemd/system.attached").exists()
    code, r = image_module(collections, root, tmp_path, name="/srv/app_2", state="detached")
    assert code == 0 and r["changed"] is False


def test_errors_name_the_problem(collections: Path, root: Path, tmp_path: Path) -> None:
    before = tree(root)
    code, r = image_module(collections, root, tmp_path, name="/srv/app_1", profile="nosuch")
    assert code == 1 and r["failed"] is True
    assert "/srv/app_1" in r["msg"] and "nosuch" in r["msg"]
    code, r = image_module(collections, root, tmp_path, name="/srv/app_9")
    assert code == 1 and "/srv/app_9" in r["msg"]
    code, r = image_module(collections, root, tmp_path, name="/srv/app_1", state="gone")
    assert code == 1 and "state" in r["msg"]
    code, r = image_module(collections, root, tmp_path, name="/srv/app_1", path="/x/app_1.raw")
    assert code == 1 and "mutually exclusive" in r["msg"]
    code, r = image_module(collections, root, tmp_path, path="/x/app_1.raw")
    assert code == 1 and "action plugin" in r["msg"]
    code, r = image_module(collections, root, tmp_path)
    assert code == 1 and "one of the following is required: name, path" in r["msg"]
    # The sandbox floor refuses an image that undoes its profile: the unit and setting named.
    make_directory_image(
        root / "srv/bad_1",
        units={"bad.service": service_unit("+/usr/bin/sleep infinity")},
        busybox=False,
    )
    before = tree(root)
    code, r = image_module(collections, root, tmp_path, name="/srv/bad_1")
    assert code == 1 and "bad.service" in r["msg"] and "ExecStart" in r["msg"], r
    assert tree(root) == before


def test_shipped_image_placed_by_content(collections: Path, tmp_path: Path) -> None:
    """src/checksum, as the action plugin passes them: checked, placed atomically, consumed."""
    root = tmp_path / "root"
    root.mkdir()
    treedir = make_directory_image(
        tmp_path / "t", units={"app.service": service_unit()}, busybox=False
    )
    image = make_squashfs_image(tmp_path / "app_1.raw", treedir)
    checksum = hashlib.sha256(image.read_bytes()).hexdigest()
    name = "/var/lib/portables/app_1.raw"

    def shipped_copy() -> str:
        src = tmp_path / "ansible-tmp" / "app_1.raw"
        src.parent.mkdir(exist_ok=True)
        shutil.copyfile(image, src)
        return str(src)

    src = shipped_copy()
    code, r = image_module(
        collections, root, tmp_path, name=name, src=src, checksum="0" * 64, check=False
    )
    assert code == 1 and "damaged in transfer" in r["msg"]
    assert not (root / "var/lib/portables/app_1.raw").exists()
    assert not list((root / "var/lib/portables").glob(".*"))
    # Refused by attach's checks (here an unknown profile): not placed either.
    code, r = image_module(
        collections, root, tmp_path, name=name, src=src, checksum=checksum, profile="nosuch"
    )
    assert code == 1 and "nosuch" in r["msg"]
    assert not (root / "var/lib/portables/app_1.raw").exists()
    assert not list(root.glob(".*")) and not list((root / "var/lib/portables").glob(".*"))
    # Check mode: what it would do, from the copy, as if it were in place; nothing there after.
    before = tree(root)
    code, r = image_module(
        collections, root, tmp_path, name=name, src=src, checksum=checksum, check=True, diff=True
    )
    assert code == 0, r
    assert tree(root) == before
    assert r["shipped"] == {"path": name, "checksum": checksum, "copied": True}
    assert r["operation"] == "attach"
    assert r["diff"][0]["after_header"] == name and checksum in r["diff"][0]["after"]
    marker = next(
        d for d in r["diff"] if d["after_header"].endswith("app.service.d/20-portable.conf")
    )
    assert f"RootImage={name}" in marker["after"]
    # What a shipment killed outright left (portable -H's or ours: its process is gone; a PID
    # above the kernel's maximum) is swept when the next one is placed.
    (root / "var/lib/portables").mkdir(parents=True)
    (root / "var/lib/portables/.app_0.raw.portable-ship.4194305").write_bytes(b"partial")
    code, r = image_module(collections, root, tmp_path, name=name, src=src, checksum=checksum)
    assert code == 0, r
    assert r["shipped"]["copied"] is True and r["operation"] == "attach"
    placed = root / "var/lib/portables/app_1.raw"
    assert placed.read_bytes() == image.read_bytes()
    assert oct(placed.stat().st_mode & 0o777) == "0o644"
    assert not os.path.exists(src)  # moved, not copied
    assert sorted(os.listdir(placed.parent)) == ["app_1.raw"]
    # Shipped again (same bytes): not placed again, nothing else to do.
    src = shipped_copy()
    code, r = image_module(collections, root, tmp_path, name=name, src=src, checksum=checksum)
    assert code == 0, r
    assert r["changed"] is False and r["shipped"]["copied"] is False


def test_info_facts(collections: Path, root: Path, tmp_path: Path) -> None:
    portables = root / "var/lib/portables"
    portables.mkdir(parents=True)
    for v in (1, 2):
        shutil.move(root / f"srv/app_{v}", portables / f"app_{v}")
    assert image_module(collections, root, tmp_path, name="app_1", profile="strict")[0] == 0
    code, r = run_module(collections, "portable_info", {"root": str(root)}, tmp=tmp_path)
    assert code == 0, r
    assert r["changed"] is False
    images = r["ansible_facts"]["portable_images"]
    assert set(images) == {"app_1", "app_2"}
    app1 = images["app_1"]
    assert app1["state"] == "attached" and app1["profile"] == "strict"
    assert app1["units"] == ["app.service"] and app1["runtime"] is False
    assert app1["attached_image"] == "/var/lib/portables/app_1"
    # As portable list: the link attach made, first in the search path
    assert app1["type"] == "directory" and app1["path"] == "/etc/portables/app_1"
    code, r = run_module(
        collections, "portable_info", {"root": str(root), "names": ["app_2"]}, tmp=tmp_path
    )
    assert code == 0 and list(r["ansible_facts"]["portable_images"]) == ["app_2"]


def test_docs_parse(collections: Path) -> None:
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(collections)}
    for module in ("portable_image", "portable_info"):
        proc = subprocess.run(
            [BIN / "ansible-doc", "--json", f"portable.services.{module}"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        doc = json.loads(proc.stdout)[f"portable.services.{module}"]
        assert doc["doc"]["options"] and doc["return"] and doc["examples"]


def test_playbook_ships_from_the_controller(collections: Path, tmp_path: Path) -> None:
    """ansible-playbook on localhost: the action plugin ships ``path`` (check mode first: not
    shipped, diff shown), a second run changes nothing."""
    root = tmp_path / "root"
    root.mkdir()
    treedir = make_directory_image(
        tmp_path / "t", units={"app.service": service_unit()}, busybox=False
    )
    image = make_squashfs_image(tmp_path / "app_3.raw", treedir)
    play = tmp_path / "play.yml"
    play.write_text(
        f"""
- hosts: localhost
  gather_facts: false
  tasks:
    - portable.services.portable_image:
        path: {image}
        root: {root}
        profile: strict
      register: result
    - ansible.builtin.debug:
        var: result
"""
    )
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(collections),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "local-tmp"),
        "ANSIBLE_REMOTE_TEMP": str(tmp_path / "remote-tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
    }

    def playbook(*args: str) -> str:
        proc = subprocess.run(
            [PLAYBOOK, "-i", "localhost,", "-c", "local", play, *args],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    out = playbook("--check", "--diff")
    assert "+++ after: /var/lib/portables/app_3.raw" in out
    assert "RootImage=/var/lib/portables/app_3.raw" in out
    assert "changed=1" in out
    assert not (root / "var").exists() and not (root / "etc").exists()
    out = playbook()
    assert "changed=1" in out
    assert (root / "var/lib/portables/app_3.raw").read_bytes() == image.read_bytes()
    assert (
        "RootImage=/var/lib/portables/app_3.raw"
        in (root / "etc/systemd/system.attached/app.service.d/20-portable.conf").read_text()
    )
    out = playbook()
    assert "changed=0" in out and "failed=0" in out
    # The task's temporary directories went at its end.
    assert not list((tmp_path / "remote-tmp").glob("ansible-tmp-*"))


def test_docs_show_the_rollout_playbook() -> None:
    """docs/fleet.md quotes the collection's playbook as it is (the one the fleet tests run)."""
    playbook = (CHECKOUT / "ansible/playbooks/rollout.yml").read_text()
    docs = (CHECKOUT / "docs/fleet.md").read_text()
    assert f"```yaml\n{playbook}```" in docs


def test_collection_lint_format_and_types(tmp_path: Path) -> None:
    """ruff (ansible/ruff.toml: the project's settings) and mypy --strict on the collection's
    Python, laid out as Ansible installs it (ansible-core itself has no type information)."""
    for argv in (["check", "ansible"], ["format", "--check", "ansible"]):
        proc = subprocess.run(
            [BIN / "ruff", *argv], cwd=CHECKOUT, capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    (tmp_path / "ansible_collections/portable").mkdir(parents=True)
    os.symlink(CHECKOUT / "ansible", tmp_path / "ansible_collections/portable/services")
    (tmp_path / "portable").mkdir()
    for entry in (CHECKOUT / "core").iterdir():
        if entry.name != "__pycache__":
            os.symlink(entry, tmp_path / "portable" / entry.name)
    os.symlink(CHECKOUT / "plugins", tmp_path / "portable/plugins")
    sources = sorted(
        str(p.relative_to(tmp_path))
        for p in (tmp_path / "ansible_collections/portable/services/plugins").glob("*/*.py")
    )
    assert len(sources) == 4
    proc = subprocess.run(
        [
            BIN / "mypy",
            "--strict",
            "--python-version=3.11",
            "--explicit-package-bases",
            "--no-incremental",
            "--follow-imports=silent",
            "--disable-error-code=import-untyped",
            *sources,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "MYPYPATH": str(tmp_path)},
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
