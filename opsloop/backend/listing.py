"""The WHERE clause and keyset cursor of every listing (tasks, task events, logs, counts).

Each filter is one equality or range on an indexed column; pages continue after the last row
seen (a keyset, never OFFSET), so page 1,000 costs what page 1 does. Column names come from our
code, never from a request; values always travel as parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from opsloop.backend.paging import BadCursor, decode_cursor, encode_cursor

T = TypeVar("T")


class Where:
    """AND-ed conditions with their named parameters; a `None` value adds nothing."""

    def __init__(self, **params: Any) -> None:
        self.clauses: list[str] = []
        self.params: dict[str, Any] = dict(params)

    def eq(self, column: str, value: Any) -> Where:
        if value is not None:
            self.clauses.append(f"{column} = %({column})s")
            self.params[column] = value
        return self

    def since(self, column: str, value: datetime | None, name: str = "since") -> Where:
        if value is not None:
            self.clauses.append(f"{column} >= %({name})s")
            self.params[name] = value
        return self

    def until(self, column: str, value: datetime | None, name: str = "until") -> Where:
        if value is not None:
            self.clauses.append(f"{column} < %({name})s")
            self.params[name] = value
        return self

    def add(self, clause: str, **params: Any) -> Where:
        self.clauses.append(clause)
        self.params.update(params)
        return self

    def after_id(self, cursor: str | None, oldest_first: bool = False) -> Where:
        """Continue an id-ordered listing after the `id_cursor` of its last row."""
        if cursor:
            (last_id,) = decode_cursor(cursor, 1)
            if isinstance(last_id, bool) or not isinstance(last_id, int):
                raise BadCursor("cursor is not valid")
            self.add("id > %(c_id)s" if oldest_first else "id < %(c_id)s", c_id=last_id)
        return self

    def sql(self, select: str, tail: str = "") -> str:
        """`select` [WHERE …] `tail`."""
        text = select
        if self.clauses:
            text += " WHERE " + " AND ".join(self.clauses)
        return text + (" " + tail if tail else "")


def page(rows: list[T], limit: int, cursor_of: Callable[[T], str]) -> tuple[list[T], str | None]:
    """A page of `limit` rows out of `limit + 1` fetched: the extra row says another page exists."""
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, cursor_of(rows[-1])
    return rows, None


def id_cursor(row: dict[str, Any]) -> str:
    """The cursor after a row of an id-ordered listing (events, logs)."""
    return encode_cursor([row["id"]])
