"""docs/operations.md says what render.yaml does: each service's command in the docs' table is
render.yaml's own (an operator copying it gets what Render runs)."""

from __future__ import annotations

import re

import yaml

from opsloop.render.reference import project_root

ROOT = project_root()


def docs_table() -> dict[str, str]:
    """name -> the `runs` cell of the table under "Deploying to Render with render.yaml"."""
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    section = text.split("## Deploying to Render with render.yaml", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells[2]
    return rows


def test_the_docs_commands_are_render_yamls() -> None:
    blueprint = yaml.safe_load((ROOT / "render.yaml").read_text(encoding="utf-8"))
    rows = docs_table()
    for service in blueprint["services"]:
        command = service.get("startCommand") or service.get("buildCommand")
        shown = re.findall(r"`([^`]+)`", rows[service["name"]])
        assert shown and shown[0] == command, (service["name"], shown, command)
    assert set(rows) == {s["name"] for s in blueprint["services"]} | {d["name"] for d in blueprint["databases"]}
