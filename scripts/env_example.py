"""Regenerate .env.example from infra/config.schema.json (sample values only): `python scripts/env_example.py`."""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALWAYS_SET = {"OPSLOOP_URL", "ECHO_AGENT_URL"}


def render() -> str:
    schema = json.loads((ROOT / "infra" / "config.schema.json").read_text())
    lines = [
        "# Every environment key opsloop reads, with sample values only (infra/config.schema.json is the source of truth;",
        "# regenerate with `python scripts/env_example.py`). `opsloop dev` writes a .env with random secrets on first run.",
        "",
    ]
    for key, spec in schema["properties"].items():
        required = ", ".join(spec.get("x-required-by", []))
        note = f" Required by: {required}." if required else " Optional."
        lines.append(f"# {spec['description']}{note}" + (" Secret." if spec.get("x-secret") else ""))
        prefix = "" if required or key in ALWAYS_SET else "# "
        lines.append(f"{prefix}{key}={spec.get('x-example', '')}")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    (ROOT / ".env.example").write_text(render())
