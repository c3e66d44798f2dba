"""The sandbox floors of the built-in profiles: data, cheap to import.

What each profile forbids is a :class:`~portable.plugin.types.Floor` (its ``rules``, a table of
:class:`~portable.plugin.types.FloorRule`, and ``hold_profile``): :data:`STANDARD` (``default``,
and any profile that says nothing else), :data:`NO_NETWORK` (``strict``, ``nonetwork``) and
:data:`NONE` (``trusted``). The profile plugins load these on every command; evaluating a floor
against unit files (:mod:`portable.security.floor`) is loaded only by the commands that check,
and the exposure score only for a unit that sets one of :data:`GRADED_SETTINGS`.
docs/security.md lists the tables.
"""

from __future__ import annotations

from collections.abc import Iterable

from portable.plugin.types import Floor, FloorRule, Profile

__all__ = [
    "BUILTIN",
    "GRADED_SETTINGS",
    "NONE",
    "NO_NETWORK",
    "STANDARD",
    "builtin_floor",
    "floor_of",
]

_EXEC = (
    "ExecCondition",
    "ExecStartPre",
    "ExecStart",
    "ExecStartPost",
    "ExecReload",
    "ExecStop",
    "ExecStopPost",
    "ExecStopPre",
)
_HOST_FILES = "reads files of the host, not of the image"
_DEPENDENCIES = (
    "Wants",
    "Requires",
    "Requisite",
    "BindsTo",
    "PartOf",
    "Upholds",
    "OnFailure",
    "OnSuccess",
    "Conflicts",
    "PropagatesReloadTo",
    "ReloadPropagatedFrom",
    "PropagatesStopTo",
    "StopPropagatedFrom",
)
_LISTEN_PATHS = (
    "ListenStream",
    "ListenDatagram",
    "ListenSequentialPacket",
    "ListenFIFO",
    "ListenSpecial",
    "ListenUSBFunction",
)
_DIRECTORIES = (
    "StateDirectory",
    "CacheDirectory",
    "LogsDirectory",
    "RuntimeDirectory",
    "ConfigurationDirectory",
)


def _rules(settings: Iterable[str], **kw: object) -> tuple[FloorRule, ...]:
    return tuple(FloorRule(setting=s, **kw) for s in settings)  # type: ignore[arg-type]


STANDARD = Floor(
    rules=(
        *_rules(
            _EXEC,
            match="exec-privileged",
            reason="runs with full privileges, outside the sandbox (the host's files are "
            "reachable through /proc/1/root)",
        ),
        FloorRule(
            setting="PermissionsStartOnly",
            match="values",
            values=("yes", "true", "on", "1"),
            reason="runs the service's other commands with full privileges, outside the sandbox",
            unit_types=("service",),
        ),
        *_rules(
            (
                "RootDirectory",
                "RootImage",
                "MountImages",
                "ExtensionImages",
                "ExtensionDirectories",
            ),
            reason="runs the service on (or adds) files of the host instead of the image",
        ),
        *_rules(
            ("BindPaths", "BindReadOnlyPaths"),
            reason="makes a path of the host visible inside the service",
        ),
        FloorRule(
            setting="EnvironmentFile",
            match="host-file",
            reason=_HOST_FILES + " (only /etc/default/NAME or /etc/sysconfig/NAME, NAME being "
            "the image's, may be read)",
        ),
        *_rules(
            ("LoadCredential", "LoadCredentialEncrypted", "ImportCredential"),
            reason=_HOST_FILES,
        ),
        *_rules(
            ("NetworkNamespacePath", "IPCNamespacePath"),
            reason="joins a namespace of the host or of another process",
        ),
        FloorRule(
            setting="JoinsNamespaceOf",
            reason="shares the namespaces of another unit",
        ),
        FloorRule(
            setting="StandardInput",
            match="prefix",
            values=("file:",),
            reason="opens a file of the host",
        ),
        *_rules(
            ("StandardOutput", "StandardError"),
            match="prefix",
            values=("file:", "append:", "truncate:"),
            reason="writes to a file of the host",
        ),
        FloorRule(setting="TTYPath", reason="opens a terminal of the host"),
        FloorRule(
            setting="KillMode",
            match="values",
            values=("none",),
            reason="leaves the service's processes running when it stops (after detach --now)",
        ),
        *_rules(
            _DIRECTORIES,
            match="foreign-name",
            reason="gives the service a host directory that is not named after the image",
        ),
        *_rules(
            (*_DEPENDENCIES, "Sockets", "Service", "Unit", "Also"),
            match="host-unit",
            reason="starts, stops or reloads a unit of the host",
        ),
        FloorRule(
            setting="Alias",
            match="foreign-name",
            reason="shadows a unit of the host of that name when enabled",
        ),
        *_rules(
            _EXEC,
            reason="runs on the host's root, as root: a socket unit gets neither the profile "
            "nor the image's root directory",
            unit_types=("socket",),
        ),
        *_rules(
            _LISTEN_PATHS,
            match="host-path",
            reason="makes (or replaces) a file on the host outside /run/NAME, NAME being the "
            "image's",
            unit_types=("socket",),
        ),
        FloorRule(
            setting="Symlinks",
            reason="makes symbolic links on the host",
            unit_types=("socket",),
        ),
        FloorRule(
            setting="MakeDirectory",
            match="values",
            values=("yes", "true", "on", "1"),
            reason="makes directories on the host",
            unit_types=("path",),
        ),
    ),
)
"""The floor of ``default`` and of any profile that says nothing else (third-party ones too)."""

NO_NETWORK = Floor(
    rules=(
        *STANDARD.rules,
        *_rules(
            ("ListenStream", "ListenDatagram", "ListenSequentialPacket"),
            match="network-address",
            reason="hands the service a socket on the host's network, which the profile keeps "
            "it off",
            unit_types=("socket",),
        ),
    ),
)
"""The floor of ``strict`` and ``nonetwork`` (``PrivateNetwork=yes``): no network sockets from
a socket unit either."""

NONE = Floor(rules=(), hold_profile=False)
"""The floor of ``trusted``: it promises nothing, so nothing is refused."""

BUILTIN: dict[str, Floor] = {
    "default": STANDARD,
    "nonetwork": NO_NETWORK,
    "strict": NO_NETWORK,
    "trusted": NONE,
}
"""The floors of systemd's four profiles (also when a file in systemd's profile directories
replaces one of them: it promises what the name says)."""


GRADED_SETTINGS = frozenset(
    (
        "User",
        "DynamicUser",
        "SupplementaryGroups",
        "PrivateDevices",
        "PrivateMounts",
        "PrivateNetwork",
        "PrivateTmp",
        "PrivateUsers",
        "ProtectControlGroups",
        "ProtectKernelModules",
        "ProtectKernelTunables",
        "ProtectKernelLogs",
        "ProtectClock",
        "ProtectHostname",
        "ProtectHome",
        "ProtectSystem",
        "RootDirectory",
        "RootImage",
        "MountImages",
        "LockPersonality",
        "MemoryDenyWriteExecute",
        "NoNewPrivileges",
        "CapabilityBoundingSet",
        "AmbientCapabilities",
        "UMask",
        "KeyringMode",
        "ProtectProc",
        "ProcSubset",
        "NotifyAccess",
        "RemoveIPC",
        "Delegate",
        "RestrictRealtime",
        "RestrictSUIDSGID",
        "RestrictNamespaces",
        "RestrictAddressFamilies",
        "SystemCallArchitectures",
        "SystemCallFilter",
        "IPAddressDeny",
        "IPAddressAllow",
        "IPIngressFilterPath",
        "IPEgressFilterPath",
        "DevicePolicy",
        "DeviceAllow",
        "LoadCredential",
        "LoadCredentialEncrypted",
        "SetCredential",
        "SetCredentialEncrypted",
        "NetworkNamespacePath",
        "MountAPIVFS",
        "BindLogSockets",
        "LogNamespace",
    )
)
"""The ``[Service]`` settings the exposure score reads (``[Unit]``'s ``DefaultDependencies=``
too), the keys of :data:`portable.security.settings.HANDLERS` (a test keeps them equal): a unit
setting no check can see (``ExecStart=``, ``Description=``) never changes a score, so the floor
holds the profile without the score for a unit that sets none of these."""


def floor_of(profile: Profile) -> Floor:
    """The floor ``profile`` promises: its own, else :data:`STANDARD` (the registry has already
    given a profile that ``extends`` another its base's floor)."""
    return profile.floor if profile.floor is not None else STANDARD


def builtin_floor(name: str) -> Floor | None:
    """The floor of systemd's profile ``name``: :data:`STANDARD` for ``default``,
    :data:`NO_NETWORK` for ``strict`` and ``nonetwork``, :data:`NONE` (no rules) for ``trusted``;
    None for any other name. A profile built on one of them (or a file that replaces one) promises
    what it does."""
    return BUILTIN.get(name)
