"""Named SQL queries, kept in `.sql` files so the database work is reviewable in one place.

A file holds blocks that start with `-- name: query_name`; `queries("tasks").create_task` is the
text of that block, with psycopg `%(param)s` placeholders.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from types import SimpleNamespace

_DIR = Path(__file__).parent
_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


@functools.cache
def queries(module: str) -> SimpleNamespace:
    text = (_DIR / f"{module}.sql").read_text()
    parts = _NAME.split(text)
    named = {parts[i]: parts[i + 1].strip() for i in range(1, len(parts), 2)}
    return SimpleNamespace(**named)
