"""Which part of `q` the trigram index looks up (opsloop.backend.logs.repository.index_word)."""

import pytest

from opsloop.backend.logs.repository import index_word


@pytest.mark.parametrize(
    ("q", "part"),
    [
        ("items/2345 ", "2345 "),  # the word with digits, with the separator after it
        ("api/v1/items/2345", "2345"),  # at the end of q: nothing follows
        ("cache miss", "cache "),  # no digits: the longest word
        ("request handled", "request "),
        ("x_y 100%", "100%"),
        ("c4ca4238a0b9", None),  # one word: q itself
        ("2345 ", None),  # the part would be q itself
        ("a/b", None),  # no word long enough for a trigram
        ("", None),
    ],
)
def test_index_word(q: str, part: str | None) -> None:
    assert index_word(q) == part
