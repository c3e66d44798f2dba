"""A script that runs ``portable`` (its arguments) as the console script does, then prints which
heavy libraries the run imported: ``modules: <click?> <jeepney?>``."""

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
