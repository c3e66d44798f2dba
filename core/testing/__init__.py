"""Helpers for testing portable-services and its plugins (``portable.testing``).

* :mod:`portable.testing.images`: build small, real OS-tree images (a static busybox payload).
* :mod:`portable.testing.box`: boot a throwaway systemd with ``systemd-nspawn`` to run commands in.
  Which systemd is one switch, ``Box(distro="debian-12")`` (systemd 252) or ``"debian-13"``
  (systemd 257), or the environment variable ``PORTABLE_TEST_BOX``; the default is the Debian
  release this machine runs. ``box.distro`` and ``box.systemd_version`` say what booted.
* :mod:`portable.testing.rootfs`: the OS trees of the boxes that are not this machine's own
  release, built once with ``mmdebstrap`` and cached (``python -m portable.testing.rootfs``).
"""
