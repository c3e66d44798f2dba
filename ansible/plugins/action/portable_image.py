"""Action plugin of ``portable.services.portable_image``: ships ``path`` from the controller.

Runs on the controller before the module. With ``path`` (an image file here), the image goes
to the managed host's ``/var/lib/portables/`` under its file name, by content: the SHA-256 of
the file there is asked first (``ansible.builtin.stat``), and only if it differs is the file
transferred, with the connection's own file transfer, into the task's temporary directory.
The module then checks the bytes and renames them into place through a temporary name (see
its ``place_image``), so the image never exists half-copied under its name; in check mode it
previews the new version from the temporary copy. The temporary directory goes at the end of
the task, whatever happened.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from typing import Any

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.plugins.action import ActionBase

MODULE = "portable.services.portable_image"
PORTABLES = "/var/lib/portables"


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ActionModule(ActionBase):  # type: ignore[misc]
    TRANSFERS_FILES = True

    def run(
        self, tmp: str | None = None, task_vars: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        task_vars = task_vars or {}
        result: dict[str, Any] = super().run(tmp, task_vars)
        args = dict(self._task.args)
        source = args.pop("path", None)
        try:
            if source is not None:
                if args.get("name"):
                    raise AnsibleActionFail("parameters are mutually exclusive: name|path")
                args.update(self._ship(str(source), args, task_vars))
            result.update(self._execute_module(MODULE, module_args=args, task_vars=task_vars))
        except AnsibleError as exc:
            result.update(failed=True, msg=str(exc.message))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _ship(self, source: str, args: dict[str, Any], task_vars: dict[str, Any]) -> dict[str, Any]:
        """The module arguments that name the shipped image: ``name`` (its path on the host)
        and, unless the host has these bytes there already, ``src`` and ``checksum``."""
        try:
            local = self._find_needle("files", source)
        except AnsibleError as exc:
            raise AnsibleActionFail(f"image {source} not found on the controller: {exc}") from exc
        if not os.path.isfile(local):
            raise AnsibleActionFail(
                f"image {local}: not a file; 'path' ships an image file (raw, squashfs...), "
                "a directory image must be on the host already ('name')"
            )
        basename = os.path.basename(local)
        name = posixpath.join(PORTABLES, basename)
        if args.get("state") == "detached":
            return {"name": name}  # nothing to ship for taking it away
        checksum = file_sha256(local)
        root = args.get("root") or "/"
        there = self._execute_module(
            "ansible.legacy.stat",
            module_args={
                "path": posixpath.join(root, name.lstrip("/")),
                "follow": False,
                "get_checksum": True,
                "checksum_algorithm": "sha256",
                "get_mime": False,
                "get_attributes": False,
            },
            task_vars=task_vars,
        )
        if there.get("failed"):
            raise AnsibleActionFail(f"cannot look at {name}: {there.get('msg', 'stat failed')}")
        stat = there.get("stat", {})
        if stat.get("isreg") and stat.get("checksum") == checksum:
            return {"name": name}
        tmpdir = self._connection._shell.tmpdir or self._make_tmp_path()
        remote = self._connection._shell.join_path(tmpdir, basename)
        self._transfer_file(local, remote)
        self._fixup_perms2((tmpdir, remote))
        return {"name": name, "src": remote, "checksum": checksum}
