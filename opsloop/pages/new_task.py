"""New task: type from the registered agents, source, correlation id, JSON payload checked inline."""

from __future__ import annotations

import reflex as rx

from opsloop.components.layout import empty_state, error_callout, page
from opsloop.state.new_task import NewTaskState


def new_task_page() -> rx.Component:
    return page(
        "New task",
        rx.cond(
            NewTaskState.types.length() > 0,
            rx.card(
                # A form, so that submitting reads what the fields hold at that moment: the payload's
                # on_change is debounced, and a click right after typing would otherwise send the
                # text from before.
                rx.form(
                    rx.vstack(
                        error_callout(NewTaskState.error),
                        rx.text("Type", size="2", weight="medium"),
                        rx.select(
                            NewTaskState.types, value=NewTaskState.task_type, on_change=NewTaskState.set_task_type, id="new-type", width="100%"
                        ),
                        rx.text("Source", size="2", weight="medium"),
                        rx.input(value=NewTaskState.source, on_change=NewTaskState.set_source, name="source", id="new-source", width="100%"),
                        rx.text("Correlation id (optional)", size="2", weight="medium"),
                        rx.input(
                            value=NewTaskState.correlation_id,
                            on_change=NewTaskState.set_correlation_id,
                            name="correlation_id",
                            id="new-correlation",
                            width="100%",
                        ),
                        rx.text("Payload (JSON)", size="2", weight="medium"),
                        rx.text_area(
                            value=NewTaskState.payload_text,
                            on_change=NewTaskState.set_payload.debounce(250),  # type: ignore[attr-defined]  # mypy reads rx.event's handlers as EventNamespace (it ignores the __new__ overloads pyright uses)
                            name="payload",
                            id="new-payload",
                            rows="10",
                            width="100%",
                            font_family="monospace",
                            color_scheme=rx.cond(NewTaskState.payload_error != "", "red", "gray"),
                        ),
                        rx.cond(
                            NewTaskState.payload_error != "",
                            rx.text(NewTaskState.payload_error, color_scheme="red", size="2", id="payload-error"),
                            rx.text("Valid JSON.", color_scheme="green", size="1", id="payload-ok"),
                        ),
                        rx.button(
                            "Create task",
                            type="submit",
                            disabled=~NewTaskState.can_submit,
                            loading=NewTaskState.submitting,
                            id="create-task",
                            size="3",
                        ),
                        spacing="2",
                        width="100%",
                    ),
                    on_submit=NewTaskState.submit,
                    reset_on_submit=False,
                ),
                max_width="720px",
            ),
            rx.card(empty_state("No agent is registered yet: start one (the echo agent registers itself).", "bot")),
        ),
    )
