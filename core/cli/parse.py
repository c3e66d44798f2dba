"""A declared verb's command line (:mod:`portable.cli.verbs`) read without click, for the fast
path (:mod:`portable.cli.fast`).

Only the plain spellings: ``--name VALUE``, ``--name=VALUE``, ``-p VALUE``, ``-pVALUE``,
flags alone, arguments anywhere (``-`` too). Anything else (``--help``/``-h``, ``--``, an unknown
option, short options run together, a flag given a value, a value that is empty or looks like
an option, a missing IMAGE) is ``None``: click reads it and says what is wrong, in its words.
What is accepted gets the values click gives it (the last of an option given twice, a tuple
for one given several times, the declared default for one not given).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from portable.cli.verbs import Param, Verb

__all__ = ["Parsed", "parse"]


# The verb's own parameters, by dest, as click passes them; and the plugins' options given (by
# name, with the last value; a flag: True), in the order they first appear, which is the order
# click converts them in.
Parsed = tuple[dict[str, Any], dict[str, str | bool]]


def _usable(value: str) -> bool:
    return bool(value) and not value.startswith("-")


def parse(verb: Verb, args: Sequence[str], plugin_flags: dict[str, bool]) -> Parsed | None:
    """``args`` (what follows the verb, portablectl's options for other verbs dropped) read as
    ``verb``'s, with the plugins' options ``plugin_flags`` (name -> is a flag); ``None`` for
    anything to leave to click (see the module docstring)."""
    own = {name: p for p in verb.params for name in p.names}
    values: dict[str, Any] = {}
    plugins: dict[str, str | bool] = {}
    positional: list[str] = []

    def given(name: str, value: str | None) -> bool:
        """Take option ``name`` with ``value`` (``None``: none attached); False if not plain."""
        param = own.get(name)
        flag = param.flag if param is not None else plugin_flags.get(name)
        if flag is None or (flag and value is not None):
            return False
        if not flag and (value is None or not _usable(value)):
            return False
        if param is None:
            # dicts keep the first appearance's place; the value is the last one given
            plugins[name] = True if value is None else value
        elif flag:
            values[param.dest] = True
        elif param.multiple:
            values.setdefault(param.dest, []).append(value)
        else:
            values[param.dest] = value
        return True

    i = 0
    while i < len(args):
        arg = args[i]
        if not arg or arg in ("--", "-h", "--help"):
            return None
        if arg == "-" or not arg.startswith("-"):  # "-": a PREFIX, all unit files
            positional.append(arg)
            i += 1
            continue
        name, eq, attached = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        param = own.get(name)
        takes_value = not param.flag if param is not None else plugin_flags.get(name) is False
        if name.startswith("--") or name in own:
            if eq:
                ok = given(name, attached)
            elif takes_value:
                if i + 1 >= len(args):
                    return None
                i += 1
                ok = given(name, args[i])
            else:
                ok = given(name, None)
        elif name[:2] in own and not own[name[:2]].flag:  # -pVALUE
            ok = given(name[:2], name[2:])
        else:
            return None
        if not ok:
            return None
        i += 1
    if not positional:
        return None
    return _values(verb, values, positional), plugins


def _values(verb: Verb, given: dict[str, Any], positional: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    rest = list(positional)
    for p in verb.params:
        if not p.names:
            out[p.dest] = tuple(rest) if p.multiple else rest.pop(0)
            if p.multiple:
                rest = []
        else:
            out[p.dest] = _value(p, given)
    return out


def _value(p: Param, given: dict[str, Any]) -> Any:
    if p.dest in given:
        value = given[p.dest]
        return tuple(value) if p.multiple else value
    if p.flag:
        return False
    return () if p.multiple else p.default
