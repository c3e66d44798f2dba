"""``attach --max-exposure N``: refuse services whose exposure score is above N (built-in hook).

The score is ``systemd-analyze security``'s (:mod:`portable.security`), of each service as the
attach would write it: the unit file, the profile's drop-in, ``20-portable.conf``, and the
drop-ins already on the host for that unit name. It runs before every other pre-attach hook, so
a refusal happens before anything (a network namespace, say) was made.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from portable.errors import AttachRefused
from portable.hookspecs import hookimpl

if TYPE_CHECKING:
    from portable.types import AttachOptions, ExtraSetting, Image, Profile, UnitFile

__all__ = ["portable_pre_attach"]


def _on_real_host(image: Image) -> bool:
    try:
        return os.path.samefile(image.path, image.host_path)
    except OSError:
        return False


@hookimpl(tryfirst=True)
def portable_pre_attach(
    image: Image, units: Sequence[UnitFile], profile: Profile, options: AttachOptions
) -> list[ExtraSetting] | None:
    limit = getattr(options, "max_exposure", None)
    if limit is None:
        return None
    from portable.host import Host
    from portable.security import would_attach_exposure

    # Below --root the host's own drop-ins are not known here; the image's are what counts.
    host = Host() if _on_real_host(image) else None
    scored = would_attach_exposure(image, units, profile, host=host, runtime=options.runtime)
    for result in scored:
        if result.score.exposure > round(limit * 10):
            raise AttachRefused(
                f"{result.unit}: exposure {result.score.text} {result.score.verdict} with "
                f"profile '{profile.name}' is above --max-exposure {limit:.1f}, refusing."
            )
    return None
