"""The configuration matrix: every service × every key, present / missing / invalid / absent."""

from __future__ import annotations

from collections.abc import AsyncIterator

import reflex as rx

from opsloop.backend.config_matrix import collect_reports
from opsloop.state.access import runtime


def matrix(reports: list[dict]) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """(services, rows of [key, state per service…], [service, status, problem] per error)."""
    services = [r["service"] for r in reports]
    keys: list[str] = []
    for r in reports:
        keys += [k for k in [*r.get("required", {}), *r.get("optional", {})] if k not in keys]
    rows = []
    problems = []
    for r in reports:
        for e in r.get("errors", []):
            key = e.get("params", {}).get("missingProperty") or e.get("instancePath", "").lstrip("/")
            problems.append([r["service"], key or "-", e["message"]])
    for key in keys:
        row = [key]
        for r in reports:
            state = r.get("required", {}).get(key) or r.get("optional", {}).get(key) or "-"
            invalid = any((e.get("instancePath", "").lstrip("/") == key) for e in r.get("errors", []) if e.get("keyword") != "required")
            row.append("invalid" if invalid else state)
        rows.append(row)
    return services, rows, problems


class ConfigState(rx.State):
    services: rx.Field[list[str]] = rx.field(default_factory=list)
    statuses: rx.Field[list[list[str]]] = rx.field(default_factory=list)
    rows: rx.Field[list[list[str]]] = rx.field(default_factory=list)
    problems: rx.Field[list[list[str]]] = rx.field(default_factory=list)
    loading: rx.Field[bool] = rx.field(False)
    error: rx.Field[str] = rx.field("")

    @rx.event
    async def load(self) -> AsyncIterator[None]:
        self.loading = True
        self.error = ""
        yield
        try:
            reports = await collect_reports(runtime())
        except Exception as exc:
            self.error = f"Could not collect the configuration reports: {type(exc).__name__}"
            reports = []
        self.services, self.rows, self.problems = matrix(reports)
        self.statuses = [[r["service"], r["status"]] for r in reports]
        self.loading = False
