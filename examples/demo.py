"""The portable-services demo: a real image, a real systemd, a sandboxed service, no traces.

Boots a throwaway systemd (systemd-nspawn; everything but /usr on a tmpfs), builds the example
image from ``examples/hello``, and inside that systemd: inspects it, attaches it with the strict
profile and --now, shows the service running sandboxed, detaches it and shows that nothing is
left. It does so on each systemd the project is tested with, one after the other: Debian 12's
systemd 252 and Debian 13's 257 (what ``portable`` writes follows the systemd it runs on).
``--box debian-13`` runs one only. Run it with ``bash examples/demo.sh`` (as root).

``examples/hello`` holds only what is the example's own (os-release, units): it is not a tree
to pack as it is. ``make_directory_image`` adds what systemd needs to run a service from it:
the mount points ``/dev /proc /sys /run /tmp /var/tmp`` (git keeps no empty directories),
``/etc/machine-id`` and ``/etc/resolv.conf`` for the profiles' bind mounts, and the host's
static busybox as ``/usr/bin/sh`` & co (a binary this repository does not carry);
``examples/build_hello.py OUT[.raw]`` builds that image for use outside the demo. Packed
directly (``mksquashfs examples/hello x.raw``) it would attach but fail to start;
``portable inspect`` lists what is missing, ``attach`` warns (``--strict-image`` refuses).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from portable.testing.box import Box
from portable.testing.images import make_directory_image
from portable.testing.rootfs import DEFAULT_BOXES, parse_distros

HERE = Path(__file__).resolve().parent


def demo(distro: str) -> None:
    with Box(distro=distro) as box:
        print(
            f"# Booted a throwaway {distro} with systemd {box.systemd_version} in "
            f"{box.boot_seconds:.1f}s (container {box.name})."
        )
        images = box.mkdtemp(prefix="demo-")
        image = make_directory_image(images / "hello_1.0", template=HERE / "hello", os_release=None)
        portable = [str(box.python_executable), "-m", "portable"]

        def show(title: str, cmd: list[str] | str, *, check: bool = True) -> str:
            shown = cmd if isinstance(cmd, str) else shlex.join(cmd)
            shown = shown.replace(shlex.join(portable), "portable")
            print(f"\n## {title}\n$ {shown}")
            # One stream, so informational lines (stderr) show where they were printed.
            line = cmd if isinstance(cmd, str) else shlex.join(cmd)
            result = box.run(f"{line} 2>&1", check=check)
            out = result.stdout.rstrip()
            if out:
                print(out)
            return result.stdout

        show("Which systemd portable follows here", [*portable, "--version"])
        show(
            "The image: an OS tree with a busybox payload and three units",
            [*portable, "inspect", str(image)],
        )
        show(
            "Attach it with the strict profile and start it",
            [*portable, "attach", "--profile=strict", "--runtime", "--now", str(image)],
        )
        show("It is attached and running", [*portable, "list"])
        show(
            "The unit systemd runs: the image's unit plus our two drop-ins",
            ["systemctl", "cat", "--no-pager", "hello.service"],
        )
        show(
            "Sandboxed: a dynamic user, no capabilities, a private network",
            [
                "systemctl",
                "show",
                "hello.service",
                "-p",
                "ActiveState",
                "-p",
                "MainPID",
                "-p",
                "DynamicUser",
                "-p",
                "PrivateNetwork",
                "-p",
                "CapabilityBoundingSet",
                "-p",
                "RootDirectory",
            ],
        )
        time.sleep(0.5)  # let the service print its first lines
        show(
            "What the service itself says (journal)",
            ["journalctl", "--no-pager", "-o", "cat", "-u", "hello.service"],
        )
        pid = box.run(["systemctl", "show", "-P", "MainPID", "hello.service"]).stdout.strip()
        show(
            "Its network namespace holds only the loopback device",
            ["nsenter", "-t", pid, "-n", "ip", "-br", "link"],
        )
        show(
            "Detach it again (stopping it first)",
            [*portable, "detach", "--runtime", "--now", str(image)],
        )
        # An image whose own unit takes the sandbox back: portablectl attaches it as is.
        sneaky = make_directory_image(
            images / "sneaky_1.0",
            units={
                "sneaky.service": "[Service]\nExecStart=+/usr/bin/sh -c 'cat /proc/1/root/etc/"
                "shadow'\nBindReadOnlyPaths=/etc:/mnt\nUser=root\n"
            },
        )
        show(
            "An image that tries to undo the sandbox is refused (portablectl attaches it)",
            [*portable, "attach", "--runtime", str(sneaky)],
            check=False,
        )
        show("Nothing is left", [*portable, "list"])
        show(
            "",
            "ls -A /run/systemd/system.attached /run/portables 2>&1; "
            "systemctl is-active hello.service",
            check=False,
        )
    print("\n# The box is powered off; it left nothing on this machine.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--box",
        default=DEFAULT_BOXES,
        help=f"which boxes, comma-separated (default: {DEFAULT_BOXES})",
    )
    for i, distro in enumerate(parse_distros(parser.parse_args().box)):
        print(("\n\n" if i else "") + f"######## {distro} ########")
        demo(distro)
    return 0


if __name__ == "__main__":
    sys.exit(main())
