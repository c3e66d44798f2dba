"""Shell completion: click's, with image and profile names, and ``portable completion SHELL``.

The shell runs ``portable`` with ``_PORTABLE_COMPLETE`` set; :func:`portable.cli.main` then goes
straight to click (the fast path steps aside), and :class:`portable.cli.group.PortableGroup`
calls :func:`install` on each verb it loads, so the verbs' modules need not know about
completion: IMAGE arguments complete to the names in the search path (below ``--root`` when
given), ``--profile`` and ``profile show|export NAME`` to the registry's profiles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from click.shell_completion import CompletionItem, get_completion_class

from portable.cli import ENV_COMPLETE
from portable.systemd.host import Host

__all__ = ["complete_images", "complete_profiles", "completion_command", "install"]

SHELLS = ("bash", "zsh", "fish")

# Verbs whose "args" argument starts with an IMAGE (NAME|PATH [BOOL], NAME|PATH SIZE).
_FIRST_IS_IMAGE = {"read-only", "set-limit"}


def _root(ctx: click.Context) -> Path:
    root = ctx.find_root().params.get("root")
    return Path(root).resolve() if root else Path("/")


def complete_images(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Image names in the search path; a path (``/``, ``.``) is left to the shell's files."""
    if incomplete[:1] in ("/", ".", "~"):
        return [CompletionItem(incomplete, type="file")]
    # here: only when an image name is completed (every TAB of a verb loads this module)
    from portable.images.listing import list_images
    from portable.plugin.registry import get_registry

    try:
        host = Host(_root(ctx))
        rows = list_images(host=host, registry=get_registry(root=host.root, cache=True))
    except Exception:  # completion never fails the shell: no names, then
        return []
    return [CompletionItem(r.name) for r in rows if r.name.startswith(incomplete)]


def complete_profiles(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """The registry's profile names (plugins' included); a path is left to the shell."""
    if "/" in incomplete:
        return [CompletionItem(incomplete, type="file")]
    from portable.plugin.registry import get_registry  # here: as in complete_images

    try:
        names = sorted(get_registry(root=_root(ctx), cache=True).profiles())
    except Exception:
        return []
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


def _first_image(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    # NAME|PATH then a value: names only for the first.
    if ctx.params.get(param.name or ""):
        return []
    return complete_images(ctx, param, incomplete)


def install(command: click.Command) -> None:
    """Give ``command``'s IMAGE arguments and profile parameters their completions (those
    that have none of their own)."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            if command.name == "profile":
                for p in sub.params:
                    if isinstance(p, click.Argument) and p.name == "name":
                        _set(p, complete_profiles)
            install(sub)
        return
    for p in command.params:
        if isinstance(p, click.Argument):
            if p.name in ("image", "images", "target"):
                _set(p, complete_images)
            elif p.name == "args" and command.name in _FIRST_IS_IMAGE:
                _set(p, _first_image)
        elif p.name == "profile":
            _set(p, complete_profiles)


def _set(param: click.Parameter, complete: Any) -> None:
    # click keeps a parameter's shell_complete= here (click 8.x); tests/test_completion.py
    # would notice it moving.
    if getattr(param, "_custom_shell_complete", None) is None:
        param._custom_shell_complete = complete


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion_command(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL (bash, zsh or fish).

    \b
    bash: portable completion bash > /etc/bash_completion.d/portable
    zsh:  portable completion zsh > "${fpath[1]}/_portable"
    fish: portable completion fish > ~/.config/fish/completions/portable.fish
    """
    cls = get_completion_class(shell)
    assert cls is not None
    root = ctx.find_root().command
    click.echo(cls(root, {}, "portable", ENV_COMPLETE).source(), nl=False)
