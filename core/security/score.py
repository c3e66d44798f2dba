"""The exposure score of a service: ``systemd-analyze security``'s algorithm, offline.

``systemd-analyze security --offline=yes [--profile=P] UNIT`` loads a unit file and its drop-ins
into a minimal service manager and grades 81 sandboxing settings; the weighted badness becomes an
*exposure* from 0.0 (everything locked down) to 10.0. This module does the same from the unit's
text, without systemd running, as the systemd the host runs does it (``systemd=`` on every entry
point: a major version, the nearest known one's behaviour applies; by default the version
:func:`portable.systemd.version.detect` finds for this machine):

1. the unit file and its drop-ins (:mod:`portable.security.sources`: a unit on a host, what
   attach would write, a bare service with a profile) are parsed as systemd parses them
   (sections, ``\\`` continuations, comments, later assignments overriding or extending
   earlier ones, an empty assignment resetting a list) into a
   :class:`~portable.security.settings.ServiceSettings`;
2. systemd's unit-load implications are applied (``DynamicUser=yes`` implies ``PrivateTmp=``,
   ``RemoveIPC=``, ``NoNewPrivileges=``, ``RestrictSUIDSGID=``, ``ProtectSystem=strict``;
   ``PrivateDevices=`` drops ``CAP_MKNOD``/``CAP_SYS_RAWIO`` and closes the device policy;
   ``RootImage=`` adds loop and device-mapper devices to ``DeviceAllow=``, ...);
3. each of the 81 checks (:data:`portable.security.checks.CHECKS`) gives a badness in
   ``0..range`` or "not applicable" (this module);
   ``exposure = ceil(100 * sum(ceil(badness * weight / range)) / sum(weight))``, shown divided
   by ten, with systemd's verdicts (``PERFECT`` ... ``DANGEROUS``).

Names, ``json_field`` keys, weights and ranges are systemd's, so ``--json`` output can be matched
against systemd's; the system call groups and the rest of systemd's data are
:mod:`portable.security.tables`.

The checks, weights, ranges and verdicts are the same in systemd 252 and 257; what differs is how
a unit is read (:data:`portable.security.tables.RULES`). In 257 ``PrivateMounts=`` is a tristate
whose unset value systemd-analyze grades as set, so a unit that says nothing about it scores
better (a bare service 9.4 instead of 9.6, the ``default`` profile 3.1 instead of 3.3);
``PrivateTmp=``, ``PrivateUsers=`` and ``ProtectControlGroups=`` take new values
(``disconnected``, ``identity``, ``strict``, ...); ``DynamicUser=yes`` implies
``PrivateTmp=disconnected`` (252: ``yes``); the system call groups grew (``@sandbox``, ...);
``loongarch64`` is an architecture; encrypted credentials open ``char-tpm`` (252:
``/dev/tpmrm0``).

The library entry points::

    from portable.security.score import profile_exposure, score_unit
    from portable.security.sources import UnitSource

    score = profile_exposure(profile, root_image=True, systemd=252)  # bare service + profile
    print(score.value, score.verdict)                                # 3.4 OK (257: 3.2 OK)

    score = score_unit(UnitSource(name="foo.service", text=unit_text,
                                  dropins=(("10-profile.conf", profile_text),)))

What the score does not see, like systemd's: ``NetworkNamespacePath=`` (a service in its own
network namespace still scores as "has access to the host's network" unless
``PrivateNetwork=yes``), ``ReadOnlyPaths=``/``BindPaths=``, resource limits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from portable.plugin.types import ExtraSetting, Image, Profile, UnitFile
from portable.security.checks import CHECKS, Check
from portable.security.settings import ServiceSettings
from portable.security.sources import (
    UnitSource,
    attach_sources,
    host_unit,
    load_settings,
    profile_source,
)
from portable.systemd.host import ATTACHED_DIR, Host
from portable.systemd.version import detect

__all__ = [
    "SCORED_TYPES",
    "VERDICTS",
    "Finding",
    "Score",
    "UnitExposure",
    "assess",
    "host_unit_exposure",
    "profile_exposure",
    "score_unit",
    "verdict_for",
    "would_attach_exposure",
]

VERDICTS: tuple[tuple[int, str], ...] = (
    (100, "DANGEROUS"),
    (90, "UNSAFE"),
    (75, "EXPOSED"),
    (50, "MEDIUM"),
    (10, "OK"),
    (1, "SAFE"),
    (0, "PERFECT"),
)
"""(lowest exposure on systemd's 0..100 scale, verdict), worst first."""


def verdict_for(exposure: int) -> str:
    """systemd's verdict for an exposure on its internal 0..100 scale."""
    for lowest, name in VERDICTS:
        if exposure >= lowest:
            return name
    return "PERFECT"


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True, kw_only=True, slots=True)
class Finding:
    """One check's result. ``badness`` is ``None`` when the check does not apply."""

    check: Check
    badness: int | None
    description: str
    weight_sum: int

    @property
    def exposure(self) -> int | None:
        """This check's share of the exposure, 0..100 (systemd's per-row EXPOSURE column),
        None when it is 0 or not applicable."""
        if not self.badness:
            return None
        c = self.check
        return _ceil_div(_ceil_div(self.badness * c.weight * 100, c.range), self.weight_sum)

    @property
    def ok(self) -> bool | None:
        """True if fully good, False if not, None if not applicable (systemd's ``set``)."""
        return None if self.badness is None else self.badness == 0

    def to_json(self) -> dict[str, Any]:
        exposure = self.exposure
        return {
            "set": self.ok,
            "name": self.check.name,
            "json_field": self.check.json_field,
            "description": self.description,
            "weight": self.check.weight,
            "badness": self.badness,
            "range": self.check.range,
            "exposure": None if exposure is None else f"{exposure // 10}.{exposure % 10}",
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class Score:
    """An exposure score: ``value`` 0.0..10.0 as systemd prints it, ``exposure`` 0..100;
    ``systemd``: the version whose rules graded it (:attr:`Rules.systemd`)."""

    unit: str
    exposure: int
    verdict: str
    findings: tuple[Finding, ...]
    systemd: int = 252

    @property
    def value(self) -> float:
        return self.exposure / 10

    @property
    def text(self) -> str:
        """``"3.3"``: the value as systemd prints it."""
        return f"{self.exposure // 10}.{self.exposure % 10}"

    def above(self, limit: float) -> bool:
        """Is the exposure above ``limit`` (0.0-10.0, as ``--max-exposure`` takes it)?"""
        return self.exposure > round(limit * 10)

    def to_json(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "exposure": self.value,
            "verdict": self.verdict,
            "systemd": self.systemd,
            "checks": [f.to_json() for f in self.findings],
        }


def assess(settings: ServiceSettings) -> Score:
    """Grade ``settings`` (after :meth:`ServiceSettings.apply_implications`)."""
    results: list[tuple[Check, int | None, str]] = []
    badness_sum = weight_sum = 0
    for check in CHECKS:
        if check.default_dependencies_only and not settings.default_dependencies:
            results.append((check, None, "Service runs in a special boot phase, not applicable"))
            continue
        badness, description = check.assess(settings)
        results.append((check, badness, description))
        if badness is None:
            continue
        weight_sum += check.weight
        badness_sum += _ceil_div(badness * check.weight, check.range)
    exposure = _ceil_div(badness_sum * 100, weight_sum) if weight_sum else 0
    return Score(
        unit=settings.unit,
        exposure=exposure,
        verdict=verdict_for(exposure),
        findings=tuple(
            Finding(check=c, badness=b, description=d, weight_sum=weight_sum) for c, b, d in results
        ),
        systemd=settings.rules.systemd,
    )


def score_unit(source: UnitSource, *, systemd: int | None = None) -> Score:
    """The exposure score of a unit file with its drop-ins, as systemd ``systemd``'s
    ``systemd-analyze security --offline=yes`` grades it (``None``: this machine's)."""
    return assess(load_settings(source, systemd=systemd))


def profile_exposure(
    profile: Profile | None,
    *,
    root_image: bool = False,
    root_directory: bool = False,
    systemd: int | None = None,
) -> Score:
    """The exposure of a bare service (:data:`portable.security.sources.BARE_UNIT`) with
    ``profile``'s service drop-in (``None``: no profile).

    This is ``systemd-analyze security --offline=yes --profile=NAME`` of systemd ``systemd``
    (``None``: this machine's) on a unit with no settings of its own: for no profile 9.6 on
    252, 9.4 on 257; for ``default`` 3.3 on 252, 3.1 on 257. With
    ``root_image`` the unit also has ``RootImage=`` (what attaching a raw image adds; scores
    slightly worse, systemd then allows loop devices), with ``root_directory``
    ``RootDirectory=`` (a directory image).
    """
    source = profile_source(profile, root_image=root_image, root_directory=root_directory)
    return score_unit(source, systemd=systemd)


# --- scoring what is (or would be) on a host ---------------------------------------------------

SCORED_TYPES = ("service",)
"""Unit types that get a score (systemd-analyze security grades services only)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class UnitExposure:
    """The score of one unit as found on a host or as an attach would write it.

    :param how: ``"attached"`` (its files on the host), ``"attach"`` (what attaching the image
        would write), ``"unit"`` (a unit on the host or a unit file).
    :param profile: the profile scored with (``None``: whatever the files say).
    :param files: the unit file and the drop-ins applied, in order (host paths).
    """

    unit: str
    how: str
    profile: str | None
    score: Score
    files: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            **self.score.to_json(),
            "how": self.how,
            "profile": self.profile,
            "files": list(self.files),
        }


def would_attach_exposure(
    image: Image,
    units: Sequence[UnitFile],
    profile: Profile | None,
    *,
    host: Host | None = None,
    runtime: bool = False,
    extra: Sequence[ExtraSetting] = (),
    systemd: int | None = None,
) -> list[UnitExposure]:
    """The scores the services of ``image`` would get if attached with ``profile``: each unit
    file with the ``10-profile.conf`` and ``20-portable.conf`` attach writes, plus the drop-ins
    already on the host for that unit name (``host=None``: none), graded as systemd
    ``systemd`` does (``None``: the host's, :func:`portable.systemd.version.detect`).

    :param units: the image's unit files (other types than services are skipped);
    :param extra: the settings hooks add to ``20-portable.conf``
        (:func:`portable.security.sources.attach_sources`).
    """
    version = systemd if systemd is not None else detect(host if host is not None else Host()).major
    services = [u for u in units if u.type in SCORED_TYPES]
    return [
        UnitExposure(
            unit=source.name,
            how="attach",
            profile=getattr(profile, "name", None),
            score=score_unit(source, systemd=version),
            files=source.files,
        )
        for source in attach_sources(
            image, services, profile, host=host, runtime=runtime, extra=extra
        )
    ]


def host_unit_exposure(
    unit: str,
    *,
    host: Host,
    profile: Profile | None = None,
    fragment: str | None = None,
    systemd: int | None = None,
) -> UnitExposure:
    """The score of a unit on the host: its unit file (the first in the unit search path, or
    ``fragment``) and every drop-in systemd would apply, graded as systemd ``systemd`` does
    (``None``: the host's, :func:`portable.systemd.version.detect`). With ``profile``, the
    unit's ``10-profile.conf`` (if attached) is replaced by that profile's drop-in, or added
    (:func:`portable.security.sources.host_unit`).

    :raises portable.errors.PortableError: no such unit.
    """
    version = systemd if systemd is not None else detect(host).major
    source = host_unit(unit, host=host, profile=profile, fragment=fragment)
    directory = source.path.rsplit("/", 1)[0] or "/"
    return UnitExposure(
        unit=unit,
        how="attached" if directory in ATTACHED_DIR.values() else "unit",
        profile=getattr(profile, "name", None),
        score=score_unit(source, systemd=version),
        files=source.files,
    )
