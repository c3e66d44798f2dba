"""``attach --max-exposure N``: refuse services whose exposure score is above N (built-in hook).

The score is ``systemd-analyze security``'s (:func:`portable.plugin.would_attach_exposure`), of
each service as the attach would write it: the unit file, the profile's drop-in,
``20-portable.conf``, and the drop-ins already on the host for that unit name, graded as the
systemd the attach follows does (the running one, or with ``--root`` the one installed there).
It runs before every other pre-attach hook, so a refusal happens before anything (a network
namespace, say) was made.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from portable import plugin
from portable.plugin import AttachRefused, CliOption, hookimpl, systemd_version

if TYPE_CHECKING:
    from portable.plugin import AttachOptions, ExtraSetting, Host, Image, Profile, UnitFile

__all__ = ["MAX_EXPOSURE", "portable_cli_options", "portable_pre_attach"]


def exposure_limit(text: str) -> float:
    """``--max-exposure``'s value: a number from 0 to 10 (the scale of the exposure score)."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a valid float.") from None
    if not 0 <= value <= 10:  # NaN too
        raise ValueError(f"{value} is not in the range 0<=x<=10.")
    return value


MAX_EXPOSURE = CliOption(
    name="--max-exposure",
    verbs=("attach", "reattach"),
    metavar="N",
    convert=exposure_limit,
    help="Refuse if a service's exposure score ('portable security') is above N (0-10).",
)


@hookimpl
def portable_cli_options() -> Iterable[CliOption[Any]]:
    return [MAX_EXPOSURE]


@hookimpl(tryfirst=True)
def portable_pre_attach(
    host: Host, image: Image, units: Sequence[UnitFile], profile: Profile, options: AttachOptions
) -> list[ExtraSetting] | None:
    limit = options.plugin_options.value(MAX_EXPOSURE)
    if limit is None:
        return None
    # Below --root the host's own drop-ins are not known here; the image's are what counts.
    # The version is the one attach detected for that root (cached), the manager's on the host.
    # (plugin.would_attach_exposure: the score's modules load only when a limit is given.)
    scored = plugin.would_attach_exposure(
        image,
        units,
        profile,
        host=host if host.is_real else None,
        runtime=options.runtime,
        systemd=systemd_version(host).major,
    )
    for result in scored:
        if result.score.above(limit):
            raise AttachRefused(
                f"{result.unit}: exposure {result.score.text} {result.score.verdict} with "
                f"profile '{profile.name}' is above --max-exposure {limit:.1f}, refusing."
            )
    return None
