"""Ansible module ``portable.services.portable_image``: see DOCUMENTATION."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: portable_image
short_description: Attach, reattach, start or detach a systemd portable service image
version_added: "0.1.0"
description:
  - Puts a portable service image in the state asked for on the managed host, with the
    portable-services library (C(portable)) installed there.
  - C(attached) attaches the image; when another version of the same image name is attached,
    or the same one with another profile, copy mode or extensions, it is reattached in one
    step (units that ran are restarted on the new version, units that went away are stopped).
  - C(running) also starts the units (not templates); C(detached) stops the units and
    detaches the image (any version of its name).
  - Idempotent. In check mode nothing is changed; with diff, the unit files, drop-ins and
    image links that would be written or removed are shown.
  - With O(path) the image file on the controller is shipped to the host's
    C(/var/lib/portables/) first by the collection's action plugin, by content (SHA-256), not
    copied again when the same bytes are there, and put in place atomically (a temporary
    C(.NAME.portable-ship.PID) name, renamed once complete), never a half-copied image under its
    name. In check mode it is copied to the task's temporary directory only, to show what
    the new version would change.
author:
  - portable-services contributors
requirements:
  - On the managed host, the portable-services library importable by the Python that runs
    the module (O(ansible_python_interpreter), e.g. the virtualenv C(portable) is installed
    in), systemd 252 or later, and root (C(become) or a root login).
options:
  name:
    description:
      - The image on the managed host, as C(portable attach) takes it, a name looked up in the
        image search path (C(/etc/portables), C(/run/portables), C(/var/lib/portables)...)
        or a path.
      - With O(state=detached) any version of the image name is detached.
    type: str
  path:
    description:
      - An image file (raw, squashfs...) on the controller, shipped to the managed host's
        C(/var/lib/portables/) under its file name; the image name comes from that file name
        (C(foo_2.raw) is image C(foo_2) with units C(foo*)).
      - Relative paths are looked up as for M(ansible.builtin.copy) (a role's C(files/)...).
      - Needs the action plugin, which runs whenever the module is used as a task.
    type: path
  state:
    description:
      - C(attached), C(running) (attached and its units started) or C(detached).
    type: str
    choices: [attached, running, detached]
    default: attached
  profile:
    description:
      - Security profile (C(default), C(strict), C(nonetwork), C(trusted), or one a plugin or
        a TOML file provides).
      - Not given, an attached version's profile is kept, and a new attach gets C(default).
      - A different profile than the attached one reattaches the image.
    type: str
  runtime:
    description:
      - Attach below C(/run) (until the next reboot) instead of C(/etc).
      - Not given, an attached version stays where it is; a new attach goes to C(/etc).
    type: bool
  enable:
    description:
      - C(true) enables the units (their C([Install]) section), C(false) disables them; not
        given, their enablement is left as it is.
    type: bool
  copy:
    description:
      - How unit files and profiles are placed, as C(portable attach --copy).
      - Not given, an attached version's mode is kept, and a new attach uses C(auto).
    type: str
    choices: [auto, copy, symlink, mixed]
  extensions:
    description:
      - Extension images (names or paths on the managed host), in order.
      - Not given, an attached version's extensions are kept.
    type: list
    elements: str
  prefixes:
    description:
      - Unit name prefixes to attach; by default the image name's (C(foo_2) gives C(foo)).
    type: list
    elements: str
    default: []
  allow_settings:
    description:
      - Unit settings to attach although the profile's sandbox floor forbids them, as
        C(portable attach --allow-setting).
    type: list
    elements: str
    default: []
  root:
    description:
      - Work on the files below this directory instead of the running system (as
        C(portable --root)), with no service manager, so units are not started or enabled.
    type: path
  src:
    description:
      - Internal, set by the action plugin - the shipped copy of O(path) in the task's
        temporary directory on the managed host.
    type: path
  checksum:
    description:
      - Internal, set by the action plugin - the SHA-256 of O(path) on the controller.
    type: str
notes:
  - Supports check mode and diff mode.
  - Settings that pre-attach hooks of plugins add to the C(20-portable.conf) drop-ins are not
    in the diff (hooks are not called in check mode).
seealso:
  - module: portable.services.portable_info
"""

EXAMPLES = r"""
- name: Ship hello_2.raw from the controller and run it with the strict profile
  portable.services.portable_image:
    path: images/hello_2.raw
    profile: strict
    state: running
    enable: true

- name: An image already on the host, by name
  portable.services.portable_image:
    name: hello_2
    state: attached

- name: Detach whatever version of hello is attached, stopping its units
  portable.services.portable_image:
    name: hello
    state: detached
"""

RETURN = r"""
image:
  description: The image path the attached units name (detach - the one that was attached).
  returned: always
  type: str
  sample: /var/lib/portables/hello_2.raw
operation:
  description: What was (check mode - would be) done to the files.
  returned: always
  type: str
  choices: [none, attach, reattach, detach]
units:
  description: The units attached (detach - the units removed).
  returned: always
  type: list
  elements: str
  sample: [hello.service, hello.socket]
removed_units:
  description: Units of the attached version that a reattach removes.
  returned: always
  type: list
  elements: str
profile:
  description: The profile of the attached units (null when detached).
  returned: always
  type: str
  sample: strict
runtime:
  description: Whether the units are attached below /run.
  returned: always
  type: bool
state:
  description: The image's state afterwards, as C(portable is-attached) says it (check mode -
    as it is now).
  returned: always
  type: str
  sample: running
changes:
  description: The files written and removed, as C(portable attach) lists them.
  returned: always
  type: list
  elements: dict
  sample: [{type: copy, path: /etc/systemd/system.attached/hello.service, source: ""}]
files:
  description: Each file that was (check mode - would be) created, replaced or removed.
  returned: always
  type: list
  elements: dict
  sample: [{path: /etc/systemd/system.attached/hello.service, action: replace}]
started:
  description: Units started.
  returned: always
  type: list
  elements: str
restarted:
  description: Units that ran and were restarted on the new version (or new image bytes).
  returned: always
  type: list
  elements: str
stopped:
  description: Units stopped (gone in the new version, or detached).
  returned: always
  type: list
  elements: str
enabled:
  description: Units enabled.
  returned: always
  type: list
  elements: str
disabled:
  description: Units disabled.
  returned: always
  type: list
  elements: str
shipped:
  description: With O(path) - where the image went and whether it was copied.
  returned: when path is given
  type: dict
  sample: {path: /var/lib/portables/hello_2.raw, checksum: "9f86d0...", copied: true}
notes:
  description: What a reattach keeps or changes from the attached version.
  returned: always
  type: list
  elements: str
"""

import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.portable.services.plugins.module_utils.portable_common import (
    HAS_PORTABLE,
    open_host,
    require_portable,
    warnings_to,
)

if HAS_PORTABLE:
    from portable.engine.activation import Activation, Step, perform
    from portable.engine.attach import attach
    from portable.engine.detach import detach
    from portable.engine.preview import FileChange, Preview, preview_attach, preview_detach
    from portable.engine.reattach import reattach
    from portable.engine.state import image_state
    from portable.errors import PortableError
    from portable.plugin.registry import Registry
    from portable.plugin.types import AttachOptions, Change, DetachOptions, UnitFile
    from portable.systemd.host import ATTACHED_DIR, Host
    from portable.systemd.manager import Manager
    from portable.systemd.names import is_template
    from portable.systemd.unitfile import parse_unit_text

PORTABLES = "/var/lib/portables"
# The temporary name of an image being placed: .NAME.portable-ship.PID, as portable -H names
# its own (portable.remote.ship), so that either sweeps what the other left when killed.
SHIP_MARK = ".portable-ship."
PREVIEW_PREFIX = ".#portable-preview-"  # not an image name (systemd skips ".#" entries)
TRIGGERS = (".socket", ".timer", ".path")
INSTALL_KEYS = ("WantedBy", "RequiredBy", "UpheldBy", "Alias")
LINK_DIRS = (".wants", ".requires", ".upholds")

ARGUMENT_SPEC: dict[str, Any] = {
    "name": {"type": "str"},
    "path": {"type": "path"},
    "state": {
        "type": "str",
        "default": "attached",
        "choices": ["attached", "running", "detached"],
    },
    "profile": {"type": "str"},
    "runtime": {"type": "bool"},
    "enable": {"type": "bool"},
    "copy": {"type": "str", "choices": ["auto", "copy", "symlink", "mixed"]},
    "extensions": {"type": "list", "elements": "str"},
    "prefixes": {"type": "list", "elements": "str", "default": []},
    "allow_settings": {"type": "list", "elements": "str", "default": []},
    "root": {"type": "path"},
    "src": {"type": "path"},
    "checksum": {"type": "str"},
}


class Failed(Exception):
    """Stop the task with this message (``changed``: whether something was done before)."""

    def __init__(self, message: str, *, changed: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.changed = changed


# --- shipping ------------------------------------------------------------------------------


def sha256(path: str | os.PathLike[str]) -> str | None:
    """The file's SHA-256 (hex), or None if it is not a regular file (never opens a FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with open(fd, "rb", buffering=0) as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        digest = hashlib.sha256()
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sweep_shipments(directory: Path) -> None:
    """Remove the temporary files of shipments killed outright (their process is gone)."""
    for leftover in directory.glob(f".*{SHIP_MARK}*"):
        pid = leftover.name.rsplit(".", 1)[-1]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


def place_image(src: str, local: Path, checksum: str) -> None:
    """Put the shipped copy ``src`` at ``local``, atomically. The bytes are checked against the
    controller's ``checksum`` first, and written under a temporary name that is renamed only
    once complete: a failure (a full disk) leaves nothing under the image's name, and no
    temporary file."""
    got = sha256(src)
    if got != checksum:
        raise Failed(
            f"the shipped copy of {local.name} has SHA-256 {got}, not the controller's "
            f"{checksum}: damaged in transfer, not placed"
        )
    temp = local.parent / f".{local.name}{SHIP_MARK}{os.getpid()}"
    try:
        local.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        sweep_shipments(local.parent)
        try:
            os.rename(src, temp)  # the task's temporary directory may be on the same fs
        except OSError:
            shutil.copyfile(src, temp)
        os.chmod(temp, 0o644)
        fd = os.open(temp, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temp, local)
        dfd = os.open(local.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        raise Failed(f"cannot place the image at {local}: {exc.strerror or exc}") from exc
    finally:
        if os.path.lexists(temp):
            os.unlink(temp)


# --- what to do ----------------------------------------------------------------------------


def attach_options(params: dict[str, Any]) -> tuple[AttachOptions, set[str]]:
    """The attach options the task gives, and which of the keepable ones it gives."""
    options = AttachOptions(
        profile=params["profile"] or "default",
        copy_mode=params["copy"] or "auto",
        runtime=bool(params["runtime"]),
        prefixes=tuple(params["prefixes"]),
        extensions=tuple(params["extensions"] or ()),
        allow_settings=tuple(params["allow_settings"]),
    )
    given = {
        "profile": params["profile"] is not None,
        "copy_mode": params["copy"] is not None,
        "runtime": params["runtime"] is not None,
        "extensions": params["extensions"] is not None,
    }
    return options, {name for name, yes in given.items() if yes}


def file_diff(change: FileChange) -> dict[str, str]:
    """Ansible's diff of one file (``--diff``)."""
    return {
        "before_header": change.path if change.before is not None else f"{change.path} (absent)",
        "after_header": change.path if change.after is not None else f"{change.path} (removed)",
        "before": _text(change.before),
        "after": _text(change.after),
    }


def _text(shown: str | None) -> str:
    if shown is None:
        return ""
    return shown if shown.endswith("\n") else shown + "\n"


def _startable(units: Sequence[str]) -> list[str]:
    """Units a start job can be queued for (not templates), triggers first, as attach does."""
    return sorted((u for u in units if "@." not in u), key=lambda u: not u.endswith(TRIGGERS))


def _failures(activation: Activation | None) -> list[str]:
    if activation is None:
        return []
    lines = [e.message for e in activation.events if e.kind == "error"]
    lines += [str(j.error) for j in activation.jobs if j.error is not None]
    lines += [f"{u} failed right after its start (journalctl -u {u})" for u in activation.failed]
    return lines


def install_names(unit: UnitFile) -> list[str]:
    """The names an enable links ``unit`` as (its own, or a template's default instance);
    none when its ``[Install]`` section gives nothing to enable."""
    text = unit.data.decode("utf-8", "surrogateescape")
    install = [a for a in parse_unit_text(text, unit.name) if a.section == "Install"]
    if not any(a.key in INSTALL_KEYS and a.value.strip() for a in install):
        return []
    if not is_template(unit.name):
        return [unit.name]
    default = [a.value.strip() for a in install if a.key == "DefaultInstance"]
    if not default or not default[-1]:
        return []  # a template without DefaultInstance=: an enable links nothing
    prefix, _, suffix = unit.name.partition("@")
    return [f"{prefix}@{default[-1]}{suffix}"]


def is_enabled(attached: Path, unit: str, names: Sequence[str]) -> bool:
    """Is ``unit`` linked from a ``.wants``/``.requires``/``.upholds`` directory, or by an
    alias, in the ``attached`` directory (where a portable enable puts its links)?"""
    try:
        entries = os.listdir(attached)
    except OSError:
        return False
    target = f"/{attached.name}/{unit}"
    for entry in entries:
        path = attached / entry
        if entry.endswith(LINK_DIRS):
            if any(os.path.islink(path / name) for name in names):
                return True
        elif os.path.islink(path) and os.readlink(path).endswith(target):
            return True  # an Alias=
    return False


def change_dicts(changes: Sequence[Change]) -> list[dict[str, str]]:
    return [{"type": c.type, "path": c.path, "source": c.source} for c in changes]


class Task:
    """One run of the module: the host, what the task asks, and what it did."""

    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.params: dict[str, Any] = module.params
        self.check = bool(module.check_mode)
        self.host: Host
        self.registry: Registry
        self.manager: Manager | None
        self.host, self.registry, self.manager = open_host(self.params["root"])
        self.replaced = False  # a shipped image replaced other bytes of the same name
        self.ship_diff: dict[str, str] | None = None  # the shipped image, for --diff
        self.result: dict[str, Any] = {
            "changed": False,
            "operation": "none",
            "units": [],
            "removed_units": [],
            "profile": None,
            "runtime": False,
            "changes": [],
            "files": [],
            "started": [],
            "restarted": [],
            "stopped": [],
            "enabled": [],
            "disabled": [],
            "notes": [],
        }

    # --- the image argument and shipping ------------------------------------------------

    def image_argument(self) -> tuple[str, str | None, list[Path]]:
        """(the image argument to check and preview with, the path the image will have once
        placed (None: it is there already), temporary directories to remove at the end).

        A shipped image is placed only once the checks passed (:meth:`attached`): one that
        attach refuses (its profile unknown here, the sandbox floor...) is not left behind."""
        name, src = self.params["name"], self.params["src"]
        if src is None:
            return name, None, []
        checksum = self.params["checksum"]
        if not checksum or not name or not name.startswith("/"):
            raise Failed("'src' and 'checksum' are set by the action plugin, with 'path'")
        local = self.host.path(name)
        was = sha256(local)
        copied = was != checksum
        self.result["shipped"] = {"path": name, "checksum": checksum, "copied": copied}
        if not copied:
            return name, None, []  # the task's temporary directory goes with the copy
        self.result["changed"] = True
        # Other bytes under the same name: what ran from the old ones is restarted.
        self.replaced = was is not None
        # The image file itself, in the diff: by its checksum, not its bytes.
        self.ship_diff = {
            "before_header": name if was else f"{name} (absent)",
            "after_header": name,
            "before": f"(an image file, SHA-256 {was})\n" if was else "",
            "after": f"(the image file {os.path.basename(src)}, SHA-256 {checksum})\n",
        }
        if self.host.is_real:
            return src, name, []
        # Below --root the image argument is a path in the root: a copy goes there for as
        # long as the preview takes.
        temp = Path(tempfile.mkdtemp(prefix=PREVIEW_PREFIX, dir=self.host.path("/")))
        shutil.copyfile(src, temp / local.name)
        return self.host.unpath(temp / local.name), name, [temp]

    # --- states ------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        params = self.params
        if params["state"] == "detached":
            self.detached(params["name"])
        else:
            arg, located_at, temps = self.image_argument()
            try:
                self.attached(arg, located_at)
            finally:
                for temp in temps:
                    shutil.rmtree(temp, ignore_errors=True)
        return self.result

    def _record(self, preview: Preview) -> None:
        self.result.update(
            operation=preview.operation,
            image=preview.image,
            units=list(preview.units),
            removed_units=list(preview.removed_units),
            profile=preview.profile,
            runtime=preview.runtime,
            notes=list(preview.notes),
            files=[{"path": f.path, "action": f.action} for f in preview.files],
        )
        if preview.changed:
            self.result["changed"] = True
        if self.module._diff:
            shipped = [self.ship_diff] if self.ship_diff is not None else []
            self.result["diff"] = shipped + [file_diff(f) for f in preview.files]

    def attached(self, arg: str, located_at: str | None) -> None:
        options, explicit = attach_options(self.params)
        preview = preview_attach(
            arg,
            options,
            host=self.host,
            registry=self.registry,
            explicit=explicit,
            located_at=located_at,
        )
        self._record(preview)
        manager = self.manager
        running = self.params["state"] == "running"
        active: set[str] = set()
        if manager is not None:
            active = manager.active_units([*preview.units, *preview.removed_units])
        # Units that go away: stopped if they run, their [Install] links removed (before the
        # reattach removes their files). The others: restarted if they ran before a change,
        # started, enabled or disabled as asked.
        where = self.host.path(ATTACHED_DIR[preview.runtime])
        stop = [u for u in preview.removed_units if u in active]
        unlink = [u for u in preview.removed_units if is_enabled(where, u, [u])]
        restart: list[str] = []
        if preview.changed or self.replaced:
            restart = [u for u in preview.units if u in active]
        start = [u for u in _startable(preview.units) if u not in active] if running else []
        enable, disable = self._enablement(preview)
        if manager is None:
            stop, unlink, restart, start, enable, disable = [], [], [], [], [], []
        self.result.update(
            stopped=stop,
            restarted=restart,
            started=start,
            enabled=enable,
            disabled=[*unlink, *disable],
        )
        if stop or unlink or restart or start or enable or disable:
            self.result["changed"] = True
        if self.check:
            self.result["state"] = self._state(preview.image)
            return
        if located_at is not None:
            place_image(self.params["src"], self.host.path(located_at), self.params["checksum"])
            arg = located_at
        if manager is not None:
            gone = [Step(unit=u, job="stop") for u in stop if "@." not in u]
            gone += [Step(unit=u, disable=True) for u in unlink]
            self._perform(manager, preview, gone)
        if preview.operation == "attach":
            done = attach(
                arg,
                options,
                host=self.host,
                registry=self.registry,
                manager=manager,
            )
            self.result["changes"] = change_dicts(done.changes)
            self._reload_failed(done.reload_error)
        elif preview.operation == "reattach":
            swapped = reattach(
                arg,
                options,
                host=self.host,
                registry=self.registry,
                manager=manager,
                explicit=explicit,
            )
            self.result["changes"] = change_dicts([*swapped.removed, *swapped.attached.changes])
            self._reload_failed(swapped.attached.reload_error)
        if manager is not None:
            steps = [Step(unit=u, disable=True) for u in disable]
            steps += [
                Step(unit=u, enable_path=f"{ATTACHED_DIR[preview.runtime]}/{u}") for u in enable
            ]
            steps += [Step(unit=u, job="restart") for u in _startable(restart)]
            steps += [Step(unit=u, job="start") for u in start]
            self._perform(manager, preview, steps)
        self.result["state"] = self._state(preview.image)

    def _enablement(self, preview: Preview) -> tuple[list[str], list[str]]:
        """The units to enable and to disable, as ``enable`` asks: by their ``[Install]``
        links next to them in the attached directory, where a portable enable puts them
        (systemd's GetUnitFileState says "disabled" for such a unit, enabled or not)."""
        wanted = self.params["enable"]
        if wanted is None or self.manager is None:
            return [], []
        where = self.host.path(ATTACHED_DIR[preview.runtime])
        enable, disable = [], []
        for unit in preview.unit_files:
            names = install_names(unit)
            linked = bool(names) and is_enabled(where, unit.name, names)
            if wanted and names and not linked:
                enable.append(unit.name)
            elif not wanted and linked:
                disable.append(unit.name)
        return enable, disable

    def _perform(self, manager: Manager, preview: Preview, steps: Sequence[Step]) -> None:
        """Tell the service manager, in order; fail the task (changed) with what went wrong."""
        if not steps:
            return
        activation = perform(manager, steps, runtime=preview.runtime, wait=True)
        problems = _failures(activation)
        if problems:
            raise Failed(f"{preview.image}: " + "; ".join(problems), changed=True)

    def _reload_failed(self, error: str) -> None:
        if error:
            self.module.warn(f"Failed to reload the service manager: {error}")

    def _state(self, image: str) -> str:
        return image_state(image, host=self.host, manager=self.manager)

    def detached(self, name: str) -> None:
        preview = preview_detach(name, host=self.host, registry=self.registry)
        self._record(preview)
        if preview.operation == "none":
            self.result["state"] = "detached"
            return
        manager = self.manager
        active = manager.active_units(list(preview.units)) if manager is not None else set()
        self.result["stopped"] = [u for u in preview.units if u in active]
        if self.check:
            self.result["state"] = self._state(preview.image)
            return
        done = detach(
            preview.image,
            DetachOptions(
                runtime=preview.runtime,
                now=manager is not None,
                enable=manager is not None,
                extensions=preview.extensions,
            ),
            host=self.host,
            registry=self.registry,
            manager=manager,
        )
        self.result["changes"] = change_dicts(done.changes)
        self._reload_failed(done.reload_error)
        self.result["disabled"] = [
            e.unit
            for e in (done.activation.events if done.activation else [])
            if e.kind == "install" and e.changes
        ]
        problems = _failures(done.activation)
        if problems:
            raise Failed(f"{preview.image}: " + "; ".join(problems), changed=True)
        self.result["state"] = self._state(preview.image)


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
        mutually_exclusive=[("name", "path")],
        required_one_of=[("name", "path")],
        required_together=[("src", "checksum")],
    )
    require_portable(module)
    if module.params["path"] is not None:
        module.fail_json(
            msg="'path' is shipped by the collection's action plugin, which did not run: "
            "use the module as a task (portable.services.portable_image)"
        )
    image = module.params["name"]
    try:
        with warnings_to(module):
            task = Task(module)
            result = task.run()
    except Failed as exc:
        module.fail_json(msg=exc.message, changed=exc.changed)
    except PortableError as exc:
        module.fail_json(msg=f"{image}: {exc.message}")
    except PermissionError as exc:
        module.fail_json(msg=f"{image}: {exc.strerror}: {exc.filename} (needs root: become)")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
