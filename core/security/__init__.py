"""Checking the sandbox: the floor attach enforces, the exposure score, and ``verify`` of a
running service."""
