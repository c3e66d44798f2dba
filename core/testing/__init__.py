"""Helpers for testing portable-services and its plugins (``portable.testing``).

* :mod:`portable.testing.images`: build small, real OS-tree images (a static busybox payload).
* :mod:`portable.testing.box`: boot a throwaway systemd with ``systemd-nspawn`` to run commands in.
"""
