"""Checking the sandbox: the floor attach enforces (``floor_tables``: the built-in profiles'
floors, data; ``floor``: checking unit files against one), the exposure score (``tables``:
systemd's data, ``settings``: what a unit sets, ``checks``: the weighted checks, ``sources``:
where units and drop-ins come from, ``score``: the algorithm), what ``portable security``
scores (``targets``), and ``verify`` of a running service."""
