"""The dashboard's "Replace all variables" says what it would delete before anything is sent."""

from __future__ import annotations

from opsloop.render.state import replace_warning


def test_replace_all_names_what_it_would_delete() -> None:
    assert replace_warning(["A", "B", "C"], {"A": "1"}) == "Replacing deletes 2 variable(s) not in the text: B, C."
    many = [f"K{i:02d}" for i in range(13)]
    assert replace_warning(many, {}).endswith("K09 and 3 more.")
    assert replace_warning(["A"], {"A": "2"}) == "Replace all variables of this service by these 1?"
