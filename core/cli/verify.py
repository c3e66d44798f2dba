"""``portable verify UNIT|IMAGE [--json]``: the running sandbox against the profile's promise."""

from __future__ import annotations

import json
import sys
import textwrap

import click

from portable.cli import App
from portable.cli.changes import utf8_output
from portable.cli.options import json_output, no_pager, quiet
from portable.errors import PortableError
from portable.security.verify import NOT_CHECKED, UnitReport, verify

CELL = 44  # wrap long cells (capability lists) at this width


def render_text(report: UnitReport) -> str:
    good, bad, unchecked = ("✓", "✗", "·") if utf8_output(sys.stdout) else ("+", "-", ".")
    head = f"{report.unit}"
    details = []
    if report.pid is not None:
        details.append(f"PID {report.pid}")
    if report.profile:
        details.append(f"profile {report.profile}")
    if details:
        head += f" ({', '.join(details)})"
    if report.error:
        return f"{bad} {head}: {report.error}\n"
    marks = {True: good, False: bad, None: unchecked}
    rows = [("", "CHECK", "PROMISED", "SEEN")]
    # a row not checked says why once, in the head line, not on every row
    rows += [
        (marks[i.ok], i.check, i.promised, i.seen if i.ok is not None else NOT_CHECKED)
        for i in report.items
    ]
    w1 = max(len(r[1]) for r in rows)
    w2 = min(max(len(r[2]) for r in rows), CELL)
    lines = [f"{head}:" if report.running else f"{head}: {report.status}"]
    for mark, check, promised, seen in rows:
        left = textwrap.wrap(promised, CELL, break_on_hyphens=False, break_long_words=False) or [""]
        right = textwrap.wrap(seen, CELL, break_on_hyphens=False, break_long_words=False) or [""]
        for n in range(max(len(left), len(right))):
            cells = (
                mark if n == 0 else "",
                check if n == 0 else "",
                left[n] if n < len(left) else "",
                right[n] if n < len(right) else "",
            )
            lines.append(f"{cells[0]:1} {cells[1]:<{w1}}  {cells[2]:<{w2}}  {cells[3]}".rstrip())
    for item in report.items:
        if item.findings:
            lines.append(f"{bad if not item.ok else good} {item.check}:")
            lines += [f"    {text}" for text in item.finding_lines]
    verdict = "as promised" if report.ok else "NOT as promised"
    if not report.running:
        verdict += " where checked (not running)"
    lines.append(f"{good if report.ok else bad} {report.unit}: sandbox {verdict}")
    return "\n".join(lines) + "\n"


@click.command("verify")
@click.argument("target", metavar="UNIT|IMAGE")
@click.option(
    "--runtime",
    is_flag=True,
    default=None,
    help="Only look for IMAGE's units in the runtime attach directory.",
)
@click.option(
    "--allow-setting",
    "allow_settings",
    multiple=True,
    metavar="NAME[,NAME...]",
    help="Settings the sandbox floor check accepts (those the image was attached with "
    "--allow-setting; repeatable).",
)
@quiet
@no_pager
@json_output
@click.pass_obj
def verify_command(
    app: App,
    target: str,
    runtime: bool | None,
    allow_settings: tuple[str, ...],
    quiet: bool,
    no_pager: bool,
    as_json: bool,
) -> None:
    """Check that running services get the sandbox their profile promises.

    For UNIT, or each attached service of IMAGE, the settings of its unit file and the
    drop-ins the attach wrote (profile, 20-portable.conf) are compared with what its main
    process really has: network namespace, links and addresses, capability bounding set,
    NoNewPrivileges, seccomp, user id, root directory or image, read-only mounts. Settings
    from other drop-ins (an administrator's) are not part of the promise, so a drop-in that
    weakens the sandbox shows up here.

    The unit as the service manager loaded it (its unit file and every drop-in, except the
    attach's own two) is held to the sandbox floor of its profile, as attach holds the image's
    unit files: a setting that reaches past the sandbox (BindReadOnlyPaths=/etc:/mnt,
    ExecStartPost=+...) or undoes the profile is named FILE:LINE. KillMode=none fails too.

    A service that is not running but need not be - started by a timer, socket or path unit
    (not yet, or between runs), a oneshot that finished - is checked on all but its process
    (its promise, load state, floor, kill mode, and that its trigger is active); the kernel's
    rows say "not checked".

    Exits 1 if anything checked is not as promised, or a service failed or is not running
    with nothing to start it.
    """
    if not app.host.is_real:
        raise PortableError("'portable verify' looks at running services: not with --root")
    manager = app.manager(required=True)
    assert manager is not None
    with manager:
        reports = verify(
            target,
            host=app.host,
            manager=manager,
            runtime=runtime or None,
            registry=app.registry,
            allow={n.strip() for arg in allow_settings for n in arg.split(",") if n.strip()},
        )
    if as_json:
        click.echo(json.dumps([r.to_json() for r in reports], indent=2))
    else:
        for i, report in enumerate(reports):
            if i:
                click.echo()
            click.echo(render_text(report), nl=False)
    if not all(r.ok for r in reports):
        sys.exit(1)
