"""A script that runs ``portable`` (its arguments) as the console script does, then prints which
heavy libraries the run imported: ``modules: <click?> <jeepney?>``; and :func:`fast_path`, the
click-free path as the tests comparing it with click's run it."""

from collections.abc import Callable

from portable.cli.fast import run_fast

PROBE = (
    "import sys\n"
    "from portable.cli import main\n"
    "sys.argv = ['portable', *sys.argv[1:]]\n"
    "try:\n"
    "    main()\n"
    "except SystemExit as exc:\n"
    "    assert not exc.code, exc.code\n"
    "print('modules:', 'click' in sys.modules, 'jeepney' in sys.modules)\n"
)


def fast_path(argv: list[str], answered: list[bool]) -> Callable[[], int]:
    """``run_fast(argv)`` for ``guarded()``; appends whether the fast path took the call (one
    that raises took it, and failed as it should: the callers compare that with click's)."""

    def run() -> int:
        try:
            status = run_fast(argv)
        except Exception:
            answered.append(True)
            raise
        answered.append(status is not None)
        return status or 0

    return run
