"""Record: the engine's result classes as plain classes that show and compare themselves as
dataclasses do.

Building a dataclass costs ~0.3-0.8 ms at import (it compiles its generated methods), and
every attach and detach would build two or three (:class:`portable.engine.reload.Outcome`'s
subclasses, :class:`portable.engine.attach.AttachPlan`). None of them is given to plugins.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = ["Record"]


class Record:
    """Shown and compared as a dataclass is, over ``_FIELDS`` (in order). Subclasses write
    their keyword-only ``__init__``; mutable, so unhashable, as a dataclass with eq."""

    _FIELDS: ClassVar[tuple[str, ...]] = ()
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._FIELDS)
        return f"{type(self).__qualname__}({shown})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self._FIELDS)
