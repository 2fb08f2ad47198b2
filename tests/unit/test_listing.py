"""The WHERE + keyset helper (opsloop.backend.listing): filters become parameters, never text;
pages continue after the last row; a made-up cursor is a 400."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from opsloop.backend.listing import Where, id_cursor, page
from opsloop.backend.paging import BadCursor, encode_cursor


def test_none_adds_nothing_and_values_travel_as_parameters() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    where = Where(limit=11).eq("service", "api'; DROP TABLE logs --").eq("level", None).since("ts", t).until("ts", None)
    assert where.sql("SELECT * FROM logs", "ORDER BY id DESC LIMIT %(limit)s") == (
        "SELECT * FROM logs WHERE service = %(service)s AND ts >= %(since)s ORDER BY id DESC LIMIT %(limit)s"
    )
    assert where.params == {"limit": 11, "service": "api'; DROP TABLE logs --", "since": t}


def test_no_filter_no_where() -> None:
    assert Where().sql("SELECT status, count(*) AS n FROM tasks", "GROUP BY status") == "SELECT status, count(*) AS n FROM tasks GROUP BY status"


def test_id_cursor_continues_after_the_last_row_in_either_direction() -> None:
    cursor = id_cursor({"id": 42})
    newest_first = Where().after_id(cursor)
    oldest_first = Where().after_id(cursor, oldest_first=True)
    assert newest_first.clauses == ["id < %(c_id)s"] and newest_first.params == {"c_id": 42}
    assert oldest_first.clauses == ["id > %(c_id)s"]
    assert Where().after_id(None).clauses == []


@pytest.mark.parametrize("bad", ["not base64!", encode_cursor(["x"]), encode_cursor([True]), encode_cursor([1, 2])])
def test_a_made_up_cursor_is_a_bad_request(bad: str) -> None:
    with pytest.raises(BadCursor):
        Where().after_id(bad)


def test_page_says_whether_another_page_exists() -> None:
    rows = [{"id": i} for i in (9, 8, 7)]
    assert page(rows, 3, id_cursor) == (rows, None)
    shown, cursor = page(rows, 2, id_cursor)
    assert shown == rows[:2] and cursor == id_cursor({"id": 8})
