"""A small registry of named plug-ins: stages, brain sources, stimulus sources, hooks.

Each extension point of vlmbrain is a :class:`Registry`: adding a stage, an fMRI source or a
post-analysis hook is one module plus one ``REGISTRY.register(name, obj)`` line; nothing else
changes. Registries keep insertion order (the stage registry's order is the pipeline's).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from vlmbrain.errors import ConfigError

T = TypeVar("T")


def one_of(names) -> str:
    """``'a', 'b' or 'c'``: the allowed values in an error message."""
    names = [repr(n) for n in names]
    if not names:
        return "(none registered)"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


class Registry(Generic[T]):
    """Named objects of one kind, in registration order.

    Parameters
    ----------
    kind : str
        What the objects are, for messages (``"brain source"``).
    key : str, optional
        The configuration key that names an entry (``"fmri.kind"``), for messages.
    """

    def __init__(self, kind: str, key: str | None = None):
        self.kind = kind
        self.key = key
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T, *, replace: bool = True, before: str | None = None) -> T:
        """Add ``obj`` under ``name`` (at the end, or just before the entry ``before``)."""
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a {self.kind} needs a non-empty string name, got {name!r}")
        if name in self._items and not replace:
            raise ConfigError(f"{self.kind} {name!r} is already registered")
        if before is None or name in self._items:
            self._items[name] = obj
            return obj
        if before not in self._items:
            raise ConfigError(f"cannot register {self.kind} {name!r} before {before!r}: no such {self.kind}")
        items = {}
        for k, v in self._items.items():
            if k == before:
                items[name] = obj
            items[k] = v
        self._items = items
        return obj

    def unregister(self, name: str) -> None:
        self._items.pop(name, None)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except (KeyError, TypeError):
            where = f"'{self.key}' = {name!r}" if self.key else f"{self.kind} {name!r}"
            raise ConfigError(f"{where} is not allowed; expected one of {one_of(self._items)}") from None

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def items(self):
        return self._items.items()

    def values(self):
        return self._items.values()

    def __len__(self) -> int:
        return len(self._items)
