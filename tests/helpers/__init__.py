"""Helpers the tests share, by job (importable as ``helpers``: pytest puts ``tests/`` on
``sys.path``, as for any test directory without an ``__init__.py``).

- :mod:`helpers.corpus`: the hostile-input corpus (images, arguments, host units in the way);
- :mod:`helpers.checks`: what the hostile drivers check (host snapshots, one-line errors, loop
  devices, mounts, network namespaces left behind);
- :mod:`helpers.runners`: ways to run ``portable`` (its ``main()`` in-process, in a forked
  child, as a subprocess, in a box through a resident forking server);
- :mod:`helpers.crash`: the crash switch of the crash sweeps (SIGKILL at the N-th step of a
  transaction), installed in the process under test only; :mod:`helpers.crash_run` runs
  ``portable`` with it, as a script (in a box);
- :mod:`helpers.roots`: small ``--root`` trees and registries tests build again and again;
- :mod:`helpers.attach_diff`: the harness that runs attach/detach with ``portable`` and with
  ``portablectl`` in a box and compares what each left.
"""
