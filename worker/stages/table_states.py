"""Decoded states of a Faust table's values (tallies, drift detectors), cached per key."""

from __future__ import annotations

from typing import Any, Callable


class TableStates:
    """So an agent does not decode a key's value for every batch. A cached state is used only
    while the table still holds the very value object it was written as: a changelog recovery
    or another writer replaces the object, and the state is decoded again."""

    def __init__(self, table: Any, decode: Callable[[Any], Any]) -> None:
        self.table = table
        self.decode = decode  # stored value (None: no value) -> state
        self._cache: dict[Any, tuple[Any, Any]] = {}

    def get(self, key: Any) -> Any:
        stored = self.table.get(key)
        cached = self._cache.get(key)
        if cached is not None and stored is not None and cached[0] is stored:
            return cached[1]
        return self.decode(stored)

    def put(self, key: Any, state: Any, value: Any) -> None:
        """Write ``value`` (``state`` encoded) to the table and remember ``state`` for it."""
        self.table[key] = value
        self._cache[key] = (value, state)

    def forget(self, key: Any = None) -> None:
        """Drop one key's state, or all (states may be half-updated after a failed batch)."""
        if key is None:
            self._cache.clear()
        else:
            self._cache.pop(key, None)
