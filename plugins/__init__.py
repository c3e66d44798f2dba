"""Built-in plugins: registered through the same registry as third-party ones.

* ``image_formats/``: how images are recognised and read (directory; raw and squashfs later).
* ``profiles/``: security profiles (the four systemd ships, and those in systemd's directories).
* ``hooks/``: built-in attach/detach lifecycle hooks, one module per concern.
"""
