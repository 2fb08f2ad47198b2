"""The new-task form: types from the registered agents, a JSON payload checked as it is typed.

Nothing is created while the payload is invalid: the button is disabled, and `submit` checks
again on the server (anyone can send any event on the state socket)."""

from __future__ import annotations

import json
from typing import Any

import reflex as rx

from opsloop.backend import jsonutil
from opsloop.backend.errors import DomainError
from opsloop.backend.tasks.submit import submit
from opsloop.state.access import runtime

MAX_PAYLOAD_CHARS = 64_000


def parse_payload(text: str) -> tuple[Any, str]:
    """(payload, error message or "")."""
    if not text.strip():
        return None, ""
    if len(text) > MAX_PAYLOAD_CHARS:
        return None, f"Payload is too large (at most {MAX_PAYLOAD_CHARS} characters)."
    try:
        json.loads(text)  # only for its message: line and column of a syntax error
    except (json.JSONDecodeError, RecursionError) as exc:
        if isinstance(exc, json.JSONDecodeError):
            return None, f"Invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
    try:  # the same policy as the REST route (depth, 64-bit integers, NUL)
        return jsonutil.parse(text, "payload"), ""
    except jsonutil.JSONRejected as exc:
        return None, exc.message[0].upper() + exc.message[1:] + "."


class NewTaskState(rx.State):
    types: rx.Field[list[str]] = rx.field(default_factory=list)
    task_type: rx.Field[str] = rx.field("")
    source: rx.Field[str] = rx.field("dashboard")
    correlation_id: rx.Field[str] = rx.field("")
    payload_text: rx.Field[str] = rx.field('{\n  "message": "hello"\n}')
    payload_error: rx.Field[str] = rx.field("")
    submitting: rx.Field[bool] = rx.field(False)
    error: rx.Field[str] = rx.field("")

    @rx.var
    def can_submit(self) -> bool:
        return bool(self.task_type) and not self.payload_error and not self.submitting

    @rx.event
    async def load(self) -> None:
        agents = await runtime().registry.agents()
        self.types = sorted({t for a in agents if a.kind == "agent" for t in a.task_types})
        if self.task_type not in self.types:
            self.task_type = self.types[0] if self.types else ""
        self.error = ""
        self.submitting = False

    @rx.event
    def set_task_type(self, value: str) -> None:
        self.task_type = str(value)[:200]

    @rx.event
    def set_source(self, value: str) -> None:
        self.source = str(value)[:200]

    @rx.event
    def set_correlation_id(self, value: str) -> None:
        self.correlation_id = str(value)[:200]

    @rx.event
    def set_payload(self, value: str) -> None:
        self.payload_text = str(value)
        _, self.payload_error = parse_payload(self.payload_text)

    @rx.event
    async def submit(self, form: dict[str, Any]):
        """The form's fields as they are now (the payload's own updates may still be on the way)."""
        self.payload_text = str(form.get("payload", self.payload_text))
        self.source = str(form.get("source", self.source))[:200]
        self.correlation_id = str(form.get("correlation_id", self.correlation_id))[:200]
        payload, self.payload_error = parse_payload(self.payload_text)
        if self.payload_error:
            return
        if not self.task_type or not self.source.strip():
            self.error = "Choose a type and give a source."
            return
        self.submitting = True
        self.error = ""
        yield
        rt = runtime()
        try:
            created = await submit(
                rt.tasks,
                rt.registry,
                type=self.task_type,
                source=self.source.strip(),
                payload=payload,
                correlation_id=self.correlation_id.strip() or None,
            )
        except DomainError as exc:
            self.error = exc.message
            self.submitting = False
            return
        self.submitting = False
        yield rx.redirect(f"/dashboard/tasks/{created.id}")
