"""Many hosts: ``portable -H [USER@]HOST`` (OpenSSH) and ``portable -M CONTAINER``.

:mod:`portable.remote.cli` runs a verb on another system: with ``portable`` installed there
it runs there; with only systemd, through systemd-portabled's D-Bus API
(:mod:`portable.remote.portabled`, with :mod:`portable.systemd.bus`'s D-Bus client). An image
given as a local path is shipped first (:mod:`portable.remote.ship`).
:mod:`portable.remote.transport` reaches the other system. Nothing here is imported unless
``-H``/``-M`` is given.
"""
