"""Ansible module ``portable.services.portable_info``: see DOCUMENTATION."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: portable_info
short_description: The portable service images of a host, their state and profile, as facts
version_added: "0.1.0"
description:
  - Lists the images in the managed host's image search path, as C(portable list --json)
    does, with what is attached of each (units, profile, /etc or /run, extensions), and
    sets them as the fact C(portable_images), a mapping from image name to its details.
  - Needs the portable-services library on the managed host (see
    M(portable.services.portable_image)); reading only, root is not needed (what a user
    can't read is left out, as C(portable list) does).
author:
  - portable-services contributors
options:
  names:
    description:
      - Only these image names (as C(portable list) shows them, C(hello_2)); by default all.
    type: list
    elements: str
    default: []
  root:
    description:
      - The images below this directory instead of the running system (as C(portable --root)),
        where states are at most C(attached).
    type: path
notes:
  - Supports check mode (it changes nothing anyway).
seealso:
  - module: portable.services.portable_image
"""

EXAMPLES = r"""
- name: Gather the images
  portable.services.portable_info:

- name: Say which version of hello runs, with which profile
  ansible.builtin.debug:
    msg: "{{ item.key }} {{ item.value.state }} {{ item.value.profile }}"
  loop: "{{ ansible_facts.portable_images | dict2items }}"
  when: item.value.state != 'detached'
"""

RETURN = r"""
ansible_facts:
  description: Facts set.
  returned: always
  type: dict
  contains:
    portable_images:
      description:
        - Image name -> its details - C(name), C(path), C(type) (C(directory), C(raw)...),
          C(format), C(read_only), C(state) (C(detached), C(attached), C(enabled),
          C(running), with C(-runtime) when below /run), and, when attached, C(units),
          C(profile) (null if not recognisable), C(runtime) and C(extensions).
      type: dict
      sample:
        hello_2:
          name: hello_2
          path: /var/lib/portables/hello_2.raw
          type: raw
          format: raw
          read_only: true
          state: running
          units: [hello.service]
          profile: strict
          runtime: false
          extensions: []
portable_version:
  description: The version of the portable-services library on the host.
  returned: always
  type: str
systemd_version:
  description: The systemd the library follows there (the manager's version on the host).
  returned: always
  type: str
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.portable.services.plugins.module_utils.portable_common import (
    HAS_PORTABLE,
    open_host,
    require_portable,
    warnings_to,
)

if HAS_PORTABLE:
    import portable
    from portable.engine.reattach import attached_version
    from portable.errors import PortableError
    from portable.images.listing import ImageInfo, list_images
    from portable.plugin.registry import Registry
    from portable.systemd.host import Host
    from portable.systemd.version import detect as detect_systemd


def image_facts(row: ImageInfo, host: Host, registry: Registry) -> dict[str, Any]:
    """One image's entry of ``portable_images``."""
    facts: dict[str, Any] = {
        "name": row.name,
        "path": row.path,
        "type": row.type,
        "format": row.format,
        "read_only": row.read_only,
        "state": row.state,
    }
    if row.state != "detached":
        attached = attached_version(row.path, host=host, registry=registry)
        if attached is not None:
            facts.update(
                units=[u.name for u in attached.units],
                profile=attached.profile,
                runtime=attached.runtime,
                extensions=list(attached.extensions),
                attached_image=attached.units[0].marker[0],
            )
    return facts


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "names": {"type": "list", "elements": "str", "default": []},
            "root": {"type": "path"},
        },
        supports_check_mode=True,
    )
    require_portable(module)
    wanted = set(module.params["names"])
    try:
        with warnings_to(module):
            host, registry, manager = open_host(module.params["root"])
            rows = list_images(host=host, registry=registry, manager=manager)
            images = {
                row.name: image_facts(row, host, registry)
                for row in rows
                if not wanted or row.name in wanted
            }
            systemd = detect_systemd(host).full
    except PortableError as exc:
        module.fail_json(msg=exc.message)
    module.exit_json(
        changed=False,
        ansible_facts={"portable_images": images},
        portable_version=portable.__version__,
        systemd_version=systemd,
    )


if __name__ == "__main__":
    main()
