"""A profile's sandbox floor from TOML (``[floor]``), through ``extends``, export and show."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from helpers.roots import registry_for as registry
from helpers.roots import unit_file as unit
from helpers.runners import run_main_int as run

from portable.engine.attach import attach
from portable.errors import PluginError, PortableError
from portable.plugin.types import (
    AttachOptions,
    Floor,
    FloorEdit,
    FloorRule,
    Profile,
    ProfileDropin,
)
from portable.profiles.files import apply_floor_edit, floor_to_edit, profile_to_toml
from portable.security.floor import (
    NO_NETWORK,
    NONE,
    STANDARD,
    FloorViolation,
    check_units,
    floor_of,
)
from portable.systemd.host import Host
from portable.testing.images import make_directory_image

HEAD = "[Unit]\nDescription=x\n\n[Service]\nExecStart=/bin/sleep infinity\n"
ROOT_RULE = FloorRule(setting="User", match="values", values=("root", "0"), reason="runs as root")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "etc/portable/profiles").mkdir(parents=True)
    (r / "etc/os-release").write_text("ID=host\n")
    return r


def write(root: Path, name: str, text: str) -> None:
    (root / "etc/portable/profiles" / name).write_text(text)


def floor(root: Path, name: str) -> Floor:
    return floor_of(registry(root).profile(name).spec)


def settings_found(profile: Profile, text: str, name: str = "foo.service") -> list[str]:
    found = check_units([unit(text, name)], profile, systemd=257)
    return [f.setting for f in found]


# --- [floor] in TOML ---------------------------------------------------------------------------


def test_forbid_adds_to_the_standard_floor(root: Path) -> None:
    write(
        root,
        "web.toml",
        """
[service.set]
DynamicUser = "yes"
[[floor.forbid]]                # the long form of forbid = [{...}, ...]
setting = "User"
match = "values"
values = ["root", "0"]
reason = "runs as root"
[[floor.forbid]]
setting = "Nice"
[[floor.forbid]]
setting = "ListenFIFO"
match = "prefix"
values = ["/srv/"]
reason = "x"
unit_types = ["socket"]
""",
    )
    web = registry(root).profile("web").spec
    got = floor_of(web)
    assert got.rules[: len(STANDARD.rules)] == STANDARD.rules
    assert got.rules[len(STANDARD.rules) :] == (
        ROOT_RULE,
        FloorRule(setting="Nice", reason="forbidden by profile 'web'"),
        FloorRule(
            setting="ListenFIFO",
            match="prefix",
            values=("/srv/",),
            reason="x",
            unit_types=("socket",),
        ),
    )
    assert got.hold_profile is True
    assert "User" in settings_found(web, HEAD + "User=root\n")
    assert "User" not in settings_found(web, HEAD + "User=foo\n")
    assert settings_found(web, HEAD + "Nice=5\n") == ["Nice"]


def test_allow_drops_the_bases_rules_and_forbid_may_replace_them(root: Path) -> None:
    write(
        root,
        "relaxed.toml",
        """
extends = "default"
[floor]
allow = ["BindReadOnlyPaths", "StandardOutput"]
[[floor.forbid]]
setting = "StandardOutput"
match = "prefix"
values = ["truncate:"]
reason = "overwrites a file of the host"
""",
    )
    got = floor(root, "relaxed")
    assert not any(r.setting == "BindReadOnlyPaths" for r in got.rules)
    assert [r for r in got.rules if r.setting == "StandardOutput"] == [
        FloorRule(
            setting="StandardOutput",
            match="prefix",
            values=("truncate:",),
            reason="overwrites a file of the host",
        )
    ]
    assert {
        r for r in STANDARD.rules if r.setting not in ("BindReadOnlyPaths", "StandardOutput")
    } <= set(got.rules)
    relaxed = registry(root).profile("relaxed").spec
    text = HEAD + "BindReadOnlyPaths=/etc/ssl\nStandardOutput=append:/var/log/foo\n"
    assert settings_found(relaxed, text) == []
    assert settings_found(relaxed, HEAD + "StandardOutput=truncate:/etc/x\n") == ["StandardOutput"]


def test_allow_everything_and_hold_profile_off(root: Path) -> None:
    every = json.dumps(sorted({r.setting for r in STANDARD.rules}))
    write(
        root, "open.toml", f'extends = "default"\n[floor]\nallow = {every}\nhold_profile = false\n'
    )
    assert floor(root, "open") == NONE
    write(root, "held.toml", 'extends = "trusted"\n[floor]\nhold_profile = true\n')
    assert floor(root, "held") == Floor(rules=(), hold_profile=True)


def test_hold_profile_is_the_bases_by_default(root: Path) -> None:
    write(root, "a.toml", 'extends = "trusted"\n[floor]\nforbid = [{setting = "Nice"}]\n')
    assert floor(root, "a").hold_profile is False
    write(root, "b.toml", 'extends = "strict"\n[floor]\nforbid = [{setting = "Nice"}]\n')
    assert floor(root, "b").hold_profile is True


def test_a_rule_the_base_has_is_not_repeated() -> None:
    edit = FloorEdit(forbid=(STANDARD.rules[0], ROOT_RULE, ROOT_RULE))
    assert apply_floor_edit(STANDARD, edit).rules == (*STANDARD.rules, ROOT_RULE)


# --- extends ------------------------------------------------------------------------------------


def test_extends_inherits_the_bases_floor(root: Path) -> None:
    write(root, "web.toml", 'extends = "strict"\n[service]\nremove = ["PrivateNetwork"]\n')
    write(root, "open.toml", 'extends = "trusted"\n[service.set]\nNice = "5"\n')
    write(root, "plain.toml", 'extends = "default"\n')
    write(root, "own.toml", '[service.set]\nDynamicUser = "yes"\n')
    assert floor(root, "web") == NO_NETWORK  # the admin changes the drop-in, not the floor
    assert floor(root, "open") == NONE
    assert floor(root, "plain") == STANDARD
    assert registry(root).profile("own").spec.floor is None  # no base: the standard floor
    assert floor(root, "own") == STANDARD


def test_extends_chains_apply_each_edit(root: Path) -> None:
    write(root, "a.toml", 'extends = "strict"\n[floor]\nforbid = [{setting = "Nice"}]\n')
    write(root, "b.toml", 'extends = "a"\n[floor]\nallow = ["KillMode"]\n')
    got = floor(root, "b")
    assert FloorRule(setting="Nice", reason="forbidden by profile 'a'") in got.rules
    assert not any(r.setting == "KillMode" for r in got.rules)
    assert set(NO_NETWORK.rules) - set(got.rules) == {
        r for r in NO_NETWORK.rules if r.setting == "KillMode"
    }


def test_a_file_extending_its_own_name_edits_that_floor(root: Path) -> None:
    write(root, "strict.toml", 'extends = "strict"\n[floor]\nforbid = [{setting = "Nice"}]\n')
    got = floor(root, "strict")
    assert got.rules[: len(NO_NETWORK.rules)] == NO_NETWORK.rules
    assert got.rules[-1].setting == "Nice"


def test_profile_by_path_gets_its_floor(root: Path) -> None:
    (root / "srv").mkdir()
    (root / "srv/p.toml").write_text('extends = "nonetwork"\n[floor]\nallow = ["Alias"]\n')
    got = floor_of(registry(root).profile("/srv/p.toml").spec)
    assert set(got.rules) == {r for r in NO_NETWORK.rules if r.setting != "Alias"}


def test_python_profile_floor_edit_and_floor() -> None:
    edit = FloorEdit(forbid=(ROOT_RULE,))
    with pytest.raises(PluginError, match="floor_edit needs extends"):
        Profile(name="x", description="", dropins={}, floor_edit=edit)
    base = Profile(
        name="base",
        description="",
        dropins={"service": ProfileDropin(text="[Service]\nDynamicUser=yes\n")},
        floor=NO_NETWORK,
    )
    from portable.profiles.files import resolve

    child = Profile(name="c", description="", dropins={}, extends="base", floor_edit=edit)
    resolved = resolve(child, base)
    assert resolved.floor == Floor(rules=(*NO_NETWORK.rules, ROOT_RULE))
    assert resolved.floor_edit is None and resolved.extends is None
    # a floor of its own replaces the base's, the edit then applies to it
    own = Profile(name="c", description="", dropins={}, extends="base", floor=NONE, floor_edit=edit)
    assert resolve(own, base).floor == Floor(rules=(ROOT_RULE,), hold_profile=False)


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[floor]\ncolour = 1\n", "[floor]: unknown key 'colour' (expected forbid, allow"),
        ('floor = "x"\n', "[floor]: expected a table"),
        ("[floor]\nforbid = {setting = 'X'}\n", "'forbid' must be a list of tables"),
        ("[floor]\nforbid = ['User']\n", "forbid[0]: expected a table"),
        ("[floor]\nforbid = [{match = 'any'}]\n", "forbid[0]: 'setting' is missing"),
        ("[floor]\nforbid = [{setting = 'Bad Name'}]\n", "invalid setting name 'Bad Name'"),
        (
            "[floor]\nforbid = [{setting = 'User', match = 'regex'}]\n",
            "forbid[0] User=: unknown match 'regex' (expected one of any, values, prefix,",
        ),
        ("[floor]\nforbid = [{setting = 'User', colour = 1}]\n", "unknown key 'colour'"),
        ("[floor]\nforbid = [{setting = 'User', match = 'values'}]\n", "needs 'values'"),
        (
            "[floor]\nforbid = [{setting = 'User', values = ['root']}]\n",
            "'values' only go with match 'values' or 'prefix'",
        ),
        ("[floor]\nforbid = [{setting = 'User', reason = 5}]\n", "'reason' must be a one-line"),
        (
            "[floor]\nforbid = [{setting = 'User', unit_types = ['mount']}]\n",
            "forbid[0] User=: floor rule User=: unknown unit type 'mount'",
        ),
        ("[floor]\nallow = 'User'\n", "'allow' must be a list of setting names"),
        ("[floor]\nallow = ['User=root']\n", "allow: invalid setting name 'User=root'"),
        ("[floor]\nhold_profile = 'no'\n", "'hold_profile' must be true or false"),
    ],
)
def test_bad_floor_tables_are_one_line_errors_naming_the_file(
    root: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    write(root, "bad.toml", 'extends = "default"\n' + text)
    reg = registry(root)
    assert "bad" not in reg.profiles() and "default" in reg.profiles()
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(
        "portable: warning: skipping profile file /etc/portable/profiles/bad.toml"
    )
    assert message in err
    # by path: the same message, as an error
    (root / "srv").mkdir(exist_ok=True)
    (root / "srv/bad.toml").write_text('extends = "default"\n' + text)
    with pytest.raises(PortableError) as exc:
        reg.profile("/srv/bad.toml")
    assert str(exc.value).startswith("profile file /srv/bad.toml: ") and message in str(exc.value)


def test_a_floor_alone_sets_nothing(root: Path) -> None:
    (root / "srv").mkdir()
    (root / "srv/f.toml").write_text("[floor]\nforbid = [{setting = 'Nice'}]\n")
    with pytest.raises(PortableError, match="sets nothing"):
        registry(root).profile("/srv/f.toml")


# --- attach -------------------------------------------------------------------------------------


def test_attach_refuses_what_the_toml_floor_forbids(root: Path) -> None:
    write(
        root,
        "web.toml",
        """
extends = "default"
[floor]
allow = ["BindReadOnlyPaths"]
forbid = [{setting = "Nice", match = "values", values = ["-20"], reason = "too greedy"}]
""",
    )
    make_directory_image(
        root / "srv/images/foo",
        units={"foo.service": HEAD + "Nice=-20\nBindReadOnlyPaths=/etc/ssl\n"},
        busybox=False,
    )
    reg = registry(root)
    with pytest.raises(FloorViolation) as exc:
        attach(
            "/srv/images/foo",
            AttachOptions(profile="web", runtime=True),
            host=Host(root),
            registry=reg,
        )
    assert str(exc.value).splitlines()[1:] == ["  foo.service:6: Nice=-20: too greedy"]
    assert not (root / "run/systemd/system.attached").exists()
    attach(
        "/srv/images/foo",
        AttachOptions(profile="web", runtime=True, allow_settings=("Nice",)),
        host=Host(root),
        registry=reg,
    )
    assert (root / "run/systemd/system.attached/foo.service").exists()


# --- export -------------------------------------------------------------------------------------


def test_export_round_trips_the_floor(root: Path) -> None:
    write(
        root,
        "web.toml",
        """
extends = "strict"
[floor]
allow = ["KillMode", "ListenStream"]
hold_profile = false
forbid = [
  {setting = "ListenStream", match = "network-address", reason = "x", unit_types = ["socket"]},
  {setting = "User", match = "values", values = ["root", "0"], reason = "runs as root"},
]
""",
    )
    reg = registry(root)
    names = ("default", "nonetwork", "strict", "trusted", "web")
    for name in names:
        text = profile_to_toml(reg.profile(name).spec)
        doc = tomllib.loads(text)
        assert ("floor" in doc) == (name != "default")
        write(root, f"copy-{name}.toml", text)
    again = registry(root)
    for name in names:
        assert floor_of(again.profile(f"copy-{name}").spec) == floor_of(reg.profile(name).spec)
    assert tomllib.loads(profile_to_toml(reg.profile("strict").spec))["floor"] == {
        "forbid": [
            {
                "setting": s,
                "match": "network-address",
                "reason": NO_NETWORK.rules[-1].reason,
                "unit_types": ["socket"],
            }
            for s in ("ListenStream", "ListenDatagram", "ListenSequentialPacket")
        ]
    }


def test_floor_to_edit_spells_out_an_order_the_short_form_cannot_give() -> None:
    reordered = Floor(rules=(STANDARD.rules[1], STANDARD.rules[0], *STANDARD.rules[2:]))
    edit = floor_to_edit(reordered, STANDARD)
    assert edit is not None and apply_floor_edit(STANDARD, edit) == reordered
    assert floor_to_edit(STANDARD, STANDARD) is None
    for target in (NO_NETWORK, NONE, Floor(rules=STANDARD.rules[5:], hold_profile=False)):
        edit = floor_to_edit(target, STANDARD)
        assert edit is not None and apply_floor_edit(STANDARD, edit) == target


# --- profile show, profiles --json --------------------------------------------------------------


def test_profile_show_prints_the_floor(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(
        root,
        "web.toml",
        'extends = "strict"\n[floor]\nforbid = [{setting = "User", match = "values", '
        'values = ["root", "0"], reason = "runs as root"}]\n',
    )
    code, out, err = run(["--root", str(root), "profile", "show", "web"], capsys)
    assert code == 0, err
    head, _, floor_part = out.partition("\n-- Sandbox floor (own): ")
    assert "TasksMax=4" in head  # the settings come first
    lines = floor_part.splitlines()
    assert lines[0] == f"{len(NO_NETWORK.rules) + 1} rules, hold_profile on --"
    assert "ExecStart= (exec-privileged): runs with full privileges, outside the sandbox" in out
    assert "StandardOutput= (prefix file: append: truncate:): writes to a file of the host" in out
    assert (
        "PermissionsStartOnly= (values yes true on 1) in .service units: runs the service's "
        "other commands with full privileges, outside the sandbox"
    ) in lines
    assert "User= (values root 0): runs as root" in lines
    assert lines[-1].startswith("hold_profile: also any unit setting that undoes")
    assert len(lines) == len(NO_NETWORK.rules) + 3
    code, out, err = run(["--root", str(root), "profile", "show", "default"], capsys)
    assert f"-- Sandbox floor (standard): {len(STANDARD.rules)} rules, hold_profile on --" in out
    code, out, err = run(["--root", str(root), "profile", "show", "strict"], capsys)
    assert "-- Sandbox floor (no-network): " in out
    code, out, err = run(["--root", str(root), "profile", "show", "trusted"], capsys)
    assert out.endswith(
        "-- Sandbox floor (none): 0 rules, hold_profile off --\n"
        "(nothing is refused: the profile promises no sandbox)\n"
    )


def test_profiles_json_includes_the_floor(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(root, "web.toml", 'extends = "trusted"\n[floor]\nforbid = [{setting = "Nice"}]\n')
    code, out, err = run(["--root", str(root), "profiles", "--json"], capsys)
    assert code == 0, err
    rows = {p["name"]: p["floor"] for p in json.loads(out)["profiles"]}
    assert rows["trusted"] == {"table": "none", "hold_profile": False, "rules": []}
    assert rows["strict"]["table"] == "no-network"
    assert len(rows["default"]["rules"]) == len(STANDARD.rules)
    assert rows["default"]["rules"][0] == {
        "setting": "ExecCondition",
        "match": "exec-privileged",
        "values": [],
        "unit_types": [],
        "reason": STANDARD.rules[0].reason,
    }
    assert rows["web"] == {
        "table": "own",
        "hold_profile": False,
        "rules": [
            {
                "setting": "Nice",
                "match": "any",
                "values": [],
                "unit_types": [],
                "reason": "forbidden by profile 'web'",
            }
        ],
    }
