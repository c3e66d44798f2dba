"""The host's systemd: its file-system layout, name rules, unit-file syntax, its version, and
the service manager over D-Bus."""
