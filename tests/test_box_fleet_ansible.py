"""The Ansible collection driving a fleet of three test boxes over real SSH (issue 17, item 3).

ansible-core from PyPI (``.venv/bin/ansible-playbook``) with the collection built and installed
by ``ansible-galaxy``; every box (:class:`portable.testing.fleet.Fleet`) runs ``sshd`` on its
own loopback port with a key made for the test, and its modules run with the virtualenv's
Python there (the checkout is bound in). In order, on the same fleet:

1. a playbook attaches and starts a squashfs image shipped from the controller on all three
   at once; a second run changes nothing (``changed=0`` for every host);
2. ``--check --diff`` of the rollout playbook with a new version shows what it would change on
   every host, and changes nothing;
3. the rolling upgrade (``serial: 1``) reattaches one host at a time: each host's whole batch
   is done before the next one's starts, and its service was restarted on the new version;
4. a host where the attach fails (a profile not known there) stops the play with the error:
   the hosts after it keep the version they ran, and nothing is shipped to the failed one;
5. detached everywhere, then nothing left to detach;
6. a full disk where the image is placed: the error names the host and the problem, and
   neither the image nor a temporary file is left there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from portable.testing.fleet import Fleet, fleet_unavailable_reason
from portable.testing.images import make_directory_image, make_squashfs_image, service_unit

pytestmark = pytest.mark.box

BIN = Path(sys.executable).parent
CHECKOUT = Path(__file__).resolve().parents[1]
PORTABLES = "/var/lib/portables"
ATTACHED = "/etc/systemd/system.attached"
# A profile known on box1 and box3 only (test 4).
PROFILE_TOML = """description = "default, with a tasks limit"
extends = "default"
[service.set]
TasksMax = "64"
"""
PROFILE_PATH = "/etc/portable/profiles/fleetweb.toml"


@dataclass
class Controller:
    """The controller's side: the installed collection, images, and how to run ansible."""

    fleet: Fleet
    work: Path
    collections: Path
    inventory: Path
    images: Path

    @property
    def rollout(self) -> Path:
        return self.collections / "ansible_collections/portable/services/playbooks/rollout.yml"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "ANSIBLE_COLLECTIONS_PATH": str(self.collections),
            "ANSIBLE_LOCAL_TEMP": str(self.work / "ansible-local"),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.work / "cp"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_DEPRECATION_WARNINGS": "0",
        }

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env=self.env(),
            cwd=self.work,
            check=False,
            timeout=600,
        )

    def playbook(self, playbook: Path, *args: str) -> subprocess.CompletedProcess[str]:
        # The modules need the Python that has `portable`: the virtualenv's, bound in each box.
        return self._run(
            [
                str(BIN / "ansible-playbook"),
                "-i",
                str(self.inventory),
                "-e",
                f"ansible_python_interpreter={sys.executable}",
                str(playbook),
                *args,
            ]
        )

    def adhoc(
        self, module: str, args: str, hosts: str = "fleet"
    ) -> subprocess.CompletedProcess[str]:
        return self._run(
            [
                str(BIN / "ansible"),
                hosts,
                "-i",
                str(self.inventory),
                "-e",
                f"ansible_python_interpreter={sys.executable}",
                "-m",
                module,
                "-a",
                args,
            ]
        )

    def image(self, version: int) -> Path:
        return self.images / f"hello_{version}.raw"


def recap(out: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP: host -> {"ok": N, "changed": N, ...}."""
    found: dict[str, dict[str, int]] = {}
    for line in out.split("PLAY RECAP", 1)[-1].splitlines():
        m = re.match(r"^(\S+)\s+:\s+(.*)$", line)
        if m:
            found[m[1]] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m[2])}
    return found


def task_results(out: str) -> list[tuple[str, str]]:
    """(status, host) of every task result line, in the order ansible printed them."""
    return re.findall(r"^(ok|changed|fatal|failed|skipping): \[(\w+)\]", out, re.M)


def build_images(where: Path) -> None:
    """hello_1..3.raw: squashfs images whose hello.service runs (busybox sleep); version 1 also
    has hello-extra.service, which the later versions drop."""
    for version in (1, 2, 3):
        units = {"hello.service": service_unit(description=f"hello v{version}")}
        if version == 1:
            units["hello-extra.service"] = service_unit(description="hello extra")
        tree = make_directory_image(
            where / f"tree{version}",
            units=units,
            os_release=f'ID=hellotest\nVERSION_ID={version}\nPRETTY_NAME="hello {version}"\n',
        )
        make_squashfs_image(where / f"hello_{version}.raw", tree)
        shutil.rmtree(tree)


@pytest.fixture(scope="module")
def controller(box_distro: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Controller]:
    reason = fleet_unavailable_reason(box_distro)
    if reason is not None:
        pytest.skip(reason)
    if not (BIN / "ansible-playbook").exists():
        pytest.skip("ansible-core is not installed (pip install -e '.[test]')")
    work = tmp_path_factory.mktemp("ansible-fleet")
    subprocess.run(
        [
            BIN / "ansible-galaxy",
            "collection",
            "build",
            CHECKOUT / "ansible",
            "--output-path",
            work,
        ],
        capture_output=True,
        check=True,
    )
    (tarball,) = work.glob("portable-services-*.tar.gz")
    subprocess.run(
        [BIN / "ansible-galaxy", "collection", "install", "-p", work / "collections", tarball],
        capture_output=True,
        check=True,
    )
    images = work / "images"
    build_images(images)
    with Fleet(3, distro=box_distro) as fleet:
        yield Controller(
            fleet=fleet,
            work=work,
            collections=work / "collections",
            inventory=fleet.inventory(),
            images=images,
        )


def on_box(controller: Controller, alias: str, command: str) -> str:
    return controller.fleet[alias].box.run(["sh", "-c", command], check=False).stdout.strip()


def attach_state(controller: Controller, alias: str, image: str) -> str:
    """``portable is-attached IMAGE`` on the box."""
    return controller.fleet[alias].box.portable(["is-attached", image]).stdout.strip()


def enabled(controller: Controller, alias: str) -> bool:
    """Is hello.service enabled: its [Install] link next to it, where a portable enable puts it
    (systemd's is-enabled says "disabled" for a portable unit either way)."""
    link = f"{ATTACHED}/multi-user.target.wants/hello.service"
    return on_box(controller, alias, f"readlink {link}") == f"{ATTACHED}/hello.service"


def marker(controller: Controller, alias: str) -> str:
    """The image the attached hello.service names (the first line of its 20-portable.conf)."""
    return on_box(controller, alias, f"head -n1 {ATTACHED}/hello.service.d/20-portable.conf")


def started_at(controller: Controller, alias: str) -> int:
    """hello.service's last start, on the host's monotonic clock (the boxes share it)."""
    value = on_box(
        controller, alias, "systemctl show -P ActiveEnterTimestampMonotonic hello.service"
    )
    return int(value or 0)


def test_attach_on_all_three_then_nothing_changes(controller: Controller) -> None:
    site = controller.work / "site.yml"
    site.write_text(
        f"""
- name: hello v1 everywhere, at once
  hosts: fleet
  gather_facts: false
  tasks:
    - portable.services.portable_image:
        path: {controller.image(1)}
        state: running
        enable: true
"""
    )
    first = controller.playbook(site)
    assert first.returncode == 0, first.stdout + first.stderr
    assert {h: r["changed"] for h, r in recap(first.stdout).items()} == {
        "box1": 1,
        "box2": 1,
        "box3": 1,
    }
    for alias in controller.fleet.aliases:
        assert marker(controller, alias).endswith(f"'{PORTABLES}/hello_1.raw', do not edit.")
        assert attach_state(controller, alias, "hello_1") == "running"
        assert (
            on_box(controller, alias, "systemctl is-active hello.service hello-extra.service")
            == "active\nactive"
        )
        assert enabled(controller, alias)
        assert on_box(controller, alias, f"ls -A {PORTABLES}") == "hello_1.raw"
    second = controller.playbook(site)
    assert second.returncode == 0, second.stdout + second.stderr
    assert {h: r["changed"] for h, r in recap(second.stdout).items()} == {
        "box1": 0,
        "box2": 0,
        "box3": 0,
    }


def test_check_diff_shows_a_new_version_and_changes_nothing(controller: Controller) -> None:
    before = {
        a: (marker(controller, a), started_at(controller, a)) for a in controller.fleet.aliases
    }
    run = controller.playbook(
        controller.rollout, "-e", f"image={controller.image(2)}", "--check", "--diff"
    )
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert {h: r["changed"] for h, r in recap(out).items()} == {"box1": 1, "box2": 1, "box3": 1}
    # Per host: the image shipped, the drop-in and unit file replaced, the gone unit removed.
    assert out.count(f"+++ after: {PORTABLES}/hello_2.raw\n") == 3
    # (hello.service's drop-in replaced, hello-extra.service's removed)
    assert out.count(f"\n-RootImage={PORTABLES}/hello_1.raw\n") == 6
    assert out.count(f"\n+RootImage={PORTABLES}/hello_2.raw\n") == 3
    assert out.count("-Description=hello v1\n+Description=hello v2") == 3
    assert out.count(f"+++ after: {ATTACHED}/hello-extra.service (removed)") == 3
    for alias in controller.fleet.aliases:
        assert (marker(controller, alias), started_at(controller, alias)) == before[alias]
        assert on_box(controller, alias, f"ls -A {PORTABLES}") == "hello_1.raw"
        assert on_box(controller, alias, "systemctl is-active hello-extra.service") == "active"


def test_rolling_upgrade_one_host_at_a_time(controller: Controller) -> None:
    before = {a: started_at(controller, a) for a in controller.fleet.aliases}
    run = controller.playbook(controller.rollout, "-e", f"image={controller.image(2)}")
    assert run.returncode == 0, run.stdout + run.stderr
    assert {h: r["changed"] for h, r in recap(run.stdout).items()} == {
        "box1": 1,
        "box2": 1,
        "box3": 1,
    }
    # serial: 1: every task of a host (ship and reattach, read back, assert) before the next
    # host's first.
    hosts = [host for _, host in task_results(run.stdout)]
    assert hosts == ["box1"] * 3 + ["box2"] * 3 + ["box3"] * 3, run.stdout
    after = {a: started_at(controller, a) for a in controller.fleet.aliases}
    for alias in controller.fleet.aliases:
        assert after[alias] > before[alias], "hello.service was not restarted"
        assert marker(controller, alias).endswith(f"'{PORTABLES}/hello_2.raw', do not edit.")
        assert on_box(controller, alias, "systemctl show -P Description hello.service") == (
            "hello v2"
        )
        assert on_box(controller, alias, "systemctl is-active hello.service") == "active"
        # The unit version 2 dropped was stopped and removed; enablement kept.
        assert on_box(controller, alias, "systemctl is-active hello-extra.service") != "active"
        assert on_box(controller, alias, f"ls {ATTACHED}/hello-extra.service") == ""
        wants = on_box(controller, alias, f"ls -A {ATTACHED}/multi-user.target.wants")
        assert wants == "hello.service"  # hello-extra's [Install] link went with it
        assert enabled(controller, alias)
    # One host at a time: each restarted after the one before it.
    assert after["box1"] < after["box2"] < after["box3"]
    again = controller.playbook(controller.rollout, "-e", f"image={controller.image(2)}")
    assert again.returncode == 0, again.stdout + again.stderr
    assert all(r["changed"] == 0 for r in recap(again.stdout).values())


def test_failed_host_stops_the_rollout(controller: Controller) -> None:
    for alias in ("box1", "box3"):
        profile = controller.fleet[alias].box.path(PROFILE_PATH)
        profile.parent.mkdir(parents=True, exist_ok=True)
        profile.write_text(PROFILE_TOML)
    try:
        before = {a: started_at(controller, a) for a in controller.fleet.aliases}
        run = controller.playbook(
            controller.rollout, "-e", f"image={controller.image(3)}", "-e", "profile=fleetweb"
        )
        out = run.stdout
        assert run.returncode != 0, out
        # box1 done, box2 failed with the error naming the image and the profile; box3 not
        # touched.
        fatal = re.search(r"^fatal: \[box2\]: FAILED! => (.*)$", out, re.M)
        assert fatal is not None, out
        assert f"{PORTABLES}/hello_3.raw" in fatal[1] and "fleetweb" in fatal[1], fatal[1]
        assert [h for _, h in task_results(out)] == ["box1"] * 3 + ["box2"], out
        assert "box3" not in recap(out) or recap(out)["box3"]["ok"] == 0, out
        assert marker(controller, "box1").endswith(f"'{PORTABLES}/hello_3.raw', do not edit.")
        for alias in ("box2", "box3"):
            assert marker(controller, alias).endswith(f"'{PORTABLES}/hello_2.raw', do not edit.")
            assert started_at(controller, alias) == before[alias]
            assert on_box(controller, alias, "systemctl is-active hello.service") == "active"
        # Nothing shipped where it was refused, nor where the play never got.
        assert on_box(controller, "box2", f"ls -A {PORTABLES}") == "hello_1.raw\nhello_2.raw"
        assert on_box(controller, "box3", f"ls -A {PORTABLES}") == "hello_1.raw\nhello_2.raw"
        # portable_info tells them apart.
        info = controller.adhoc("portable.services.portable_info", "names=hello_2,hello_3")
        assert info.returncode == 0, info.stdout + info.stderr
        assert re.search(
            r'box1 \| SUCCESS.*?"hello_3": \{.*?"profile": "fleetweb"', info.stdout, re.S
        )
    finally:
        for alias in ("box1", "box3"):
            controller.fleet[alias].box.path(PROFILE_PATH).unlink(missing_ok=True)


def test_detach_everywhere(controller: Controller) -> None:
    run = controller.adhoc("portable.services.portable_image", "name=hello state=detached")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("| CHANGED") == 3, run.stdout
    for alias in controller.fleet.aliases:
        assert attach_state(controller, alias, "hello") == "detached"
        assert on_box(controller, alias, "systemctl is-active hello.service") != "active"
        assert on_box(controller, alias, f"ls -A {ATTACHED} 2>/dev/null") == ""
    again = controller.adhoc("portable.services.portable_image", "name=hello state=detached")
    assert again.returncode == 0 and again.stdout.count("| SUCCESS") == 3, again.stdout


def test_full_disk_leaves_nothing(controller: Controller) -> None:
    box = controller.fleet["box1"].box
    # A small file system where images go (the task's temporary directory, in /root, is not
    # on it: the shipped copy gets there, and placing it fails).
    box.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", PORTABLES])
    try:
        run = controller.adhoc(
            "portable.services.portable_image", f"path={controller.image(2)}", hosts="box1"
        )
        assert run.returncode != 0, run.stdout
        assert "box1 | FAILED" in run.stdout, run.stdout
        assert f"cannot place the image at {PORTABLES}/hello_2.raw: No space left on device" in (
            run.stdout
        )
        assert on_box(controller, "box1", f"ls -A {PORTABLES}") == ""
        assert attach_state(controller, "box1", "hello_2") == "detached"
        assert on_box(controller, "box1", "ls -A /root/.ansible/tmp") == ""
    finally:
        box.run(["umount", PORTABLES])
