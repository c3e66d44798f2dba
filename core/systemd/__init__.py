"""The host's systemd: its file-system layout (``host``), name rules (``names``), unit-file
syntax (``unitfile``), its version (``version``), and the service manager (``manager``) over
D-Bus (``bus``)."""
