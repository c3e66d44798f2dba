"""Security profiles kept in files (TOML profiles, systemd drop-ins given by path)."""
