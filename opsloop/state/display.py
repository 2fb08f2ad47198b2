"""Turning database rows into the small string dicts the browser shows (a synced var is sent whole
when it changes, so rows carry only what a view displays)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from opsloop.backend import jsonutil


def clock(ts: datetime | None) -> str:
    return ts.astimezone(UTC).strftime("%H:%M:%S") if ts else ""


def stamp(ts: datetime | None) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if ts else ""


def duration(start: datetime | None, end: datetime | None) -> str:
    if not start or not end:
        return ""
    ms = (end - start).total_seconds() * 1000
    return f"{ms:.0f} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


def pretty(value: Any) -> str:
    if value is None:
        return ""
    return jsonutil.dumps_str(value) if not isinstance(value, str) else value


def pretty_block(value: Any) -> str:
    import json

    if value is None:
        return ""
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


def task_table_row(t: dict[str, Any]) -> dict[str, str]:
    """A row of the tasks table: what the table shows, plus the version live updates are ordered
    by. The rows are sent to every open tasks view many times a second, so nothing else."""
    return {
        "id": str(t["id"]),
        "short_id": str(t["id"])[:8],
        "type": t["type"],
        "status": t["status"],
        "source": t["source"],
        "agent": t.get("agent_slug") or "",
        "correlation_id": t.get("correlation_id") or "",
        "attempts": f"{t['attempts']}/{t['max_attempts']}",
        "version": str(t["version"]),
        "updated": clock(t["updated_at"]),
        "duration": duration(t["created_at"], t.get("finished_at")),
    }


def task_row(t: dict[str, Any]) -> dict[str, str]:
    """A task as the detail and Render views show it: the table row with its trace id and creation time."""
    return {**task_table_row(t), "trace_id": t["trace_id"], "created": stamp(t["created_at"])}


def event_row(e: dict[str, Any]) -> dict[str, str]:
    return {
        "id": str(e["id"]),
        "task_id": str(e["task_id"]),
        "time": clock(e["ts"]),
        "actor": e["actor"],
        "kind": e["kind"],
        "data": pretty(e.get("data"))[:300],
    }


def log_row(entry: dict[str, Any]) -> dict[str, str]:
    return {
        "id": str(entry["id"]),
        "time": clock(entry["ts"]),
        "service": entry["service"],
        "level": entry["level"],
        "message": entry["message"][:500],
        "task_id": str(entry["task_id"]) if entry.get("task_id") else "",
        "trace_id": entry.get("trace_id") or "",
        "data": pretty(entry.get("data"))[:300],
    }


def activity_item(kind: str, row: dict[str, Any]) -> dict[str, str]:
    """One line of the activity stream, whatever it came from."""
    if kind == "task":
        return {
            "key": f"t{row['id']}:{row['version']}",
            "kind": "task",
            "time": clock(row["updated_at"]),
            "level": "info" if row["status"] != "error" else "error",
            "service": "orchestrator",
            "text": f"task {str(row['id'])[:8]} {row['type']} → {row['status']}",
            "task_id": str(row["id"]),
        }
    if kind == "event":
        return {
            "key": f"e{row['id']}",
            "kind": "event",
            "time": clock(row["ts"]),
            "level": "info",
            "service": row["actor"],
            "text": f"{row['kind']} · task {str(row['task_id'])[:8]} {pretty(row.get('data'))[:160]}",
            "task_id": str(row["task_id"]),
        }
    return {
        "key": f"l{row['id']}",
        "kind": "log",
        "time": clock(row["ts"]),
        "level": row["level"],
        "service": row["service"],
        "text": row["message"][:300],
        "task_id": str(row["task_id"]) if row.get("task_id") else "",
    }
