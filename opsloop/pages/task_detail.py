"""Task detail: fields, payload/result/error, the event timeline, its logs, cancel and retry."""

from __future__ import annotations

from typing import cast

import reflex as rx
from reflex.vars.object import ObjectVar

from opsloop.components.badges import level_badge, status_badge
from opsloop.components.layout import empty_state, error_callout, page
from opsloop.state.task_detail import TaskDetailState


def field(label: str, value: rx.Var[str]) -> rx.Component:
    return rx.data_list.item(rx.data_list.label(label), rx.data_list.value(value))


def confirm(label: str, title: str, body: str, on_confirm: rx.EventHandler, color: str, button_id: str) -> rx.Component:
    return rx.alert_dialog.root(
        rx.alert_dialog.trigger(rx.button(label, color_scheme=color, variant="soft", id=button_id)),
        rx.alert_dialog.content(
            rx.alert_dialog.title(title),
            rx.alert_dialog.description(body),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button("Keep it", variant="soft", color_scheme="gray")),
                rx.alert_dialog.action(rx.button(label, color_scheme=color, on_click=on_confirm, id=f"{button_id}-confirm")),
                justify="end",
                margin_top="1em",
            ),
        ),
    )


def block(title: str, text: rx.Var[str], block_id: str) -> rx.Component:
    return rx.card(
        rx.text(title, weight="bold", size="2"),
        rx.cond(
            text != "",
            rx.code_block(text, language="json", wrap_long_lines=True, id=block_id, font_size="12px"),
            rx.text("—", color_scheme="gray", id=block_id),
        ),
        width="100%",
    )


def timeline_item(e: ObjectVar[dict[str, str]]) -> rx.Component:
    return rx.hstack(
        rx.text(e["time"], size="1", color_scheme="gray", font_family="monospace"),
        rx.badge(e["kind"], variant="surface"),
        rx.text(e["actor"], size="1", weight="medium"),
        rx.text(e["data"], size="1", color_scheme="gray", trim="both"),
        class_name="timeline-event",
        data_kind=e["kind"],
        align="center",
        spacing="2",
    )


def log_line(entry: ObjectVar[dict[str, str]]) -> rx.Component:
    return rx.hstack(
        rx.text(entry["time"], size="1", color_scheme="gray", font_family="monospace"),
        level_badge(entry["level"]),
        rx.text(entry["service"], size="1", weight="medium"),
        rx.text(entry["message"], size="1"),
        class_name="task-log",
        align="center",
        spacing="2",
    )


def task_detail_page() -> rx.Component:
    t = cast(ObjectVar[dict[str, str]], TaskDetailState.task)  # Reflex 0.10.1 types a dict Field as an ArrayVar
    return page(
        "Task",
        rx.cond(
            TaskDetailState.found,
            rx.vstack(
                error_callout(TaskDetailState.error),
                rx.cond(TaskDetailState.notice != "", rx.callout(TaskDetailState.notice, icon="check", color_scheme="green")),
                rx.card(
                    rx.flex(
                        rx.data_list.root(
                            field("ID", rx.code(t["id"])),
                            field("Type", t["type"]),
                            field("Status", rx.box(status_badge(t["status"]), id="task-status", data_status=t["status"])),
                            field("Agent", t["agent"]),
                            field("Attempts", t["attempts"]),
                            field("Source", t["source"]),
                            orientation=rx.breakpoints(initial="vertical", sm="horizontal"),
                            size="2",
                        ),
                        rx.data_list.root(
                            field("Trace", rx.code(t["trace_id"])),
                            field("Correlation", t["correlation_id"]),
                            field("Created", t["created"]),
                            field("Duration", t["duration"]),
                            field("Version", t["version"]),
                            orientation=rx.breakpoints(initial="vertical", sm="horizontal"),
                            size="2",
                        ),
                        gap="2em",
                        wrap="wrap",
                    ),
                    width="100%",
                ),
                rx.grid(
                    block("Payload", TaskDetailState.payload, "task-payload"),
                    block("Result", TaskDetailState.result, "task-result"),
                    block("Error", TaskDetailState.task_error, "task-error"),
                    columns=rx.breakpoints(initial="1", md="3"),
                    spacing="3",
                    width="100%",
                ),
                rx.grid(
                    rx.card(
                        rx.text("Events", weight="bold", size="2"),
                        rx.vstack(rx.foreach(TaskDetailState.events, timeline_item), spacing="1", id="task-events", margin_top="0.5em"),
                    ),
                    rx.card(
                        rx.text("Logs", weight="bold", size="2"),
                        rx.cond(
                            TaskDetailState.logs.length() > 0,
                            rx.vstack(rx.foreach(TaskDetailState.logs, log_line), spacing="1", id="task-logs", margin_top="0.5em"),
                            rx.text("No log lines yet.", size="1", color_scheme="gray", id="task-logs"),
                        ),
                    ),
                    columns=rx.breakpoints(initial="1", md="2"),
                    spacing="3",
                    width="100%",
                ),
                width="100%",
                spacing="3",
            ),
            rx.card(empty_state("Task not found.", "search-x")),
        ),
        actions=rx.hstack(
            rx.cond(
                TaskDetailState.can_cancel,
                confirm(
                    "Cancel",
                    "Cancel this task?",
                    "A queued task will not run; a running one's answer will be ignored.",
                    TaskDetailState.cancel,  # type: ignore[arg-type]  # mypy reads rx.event's handlers as EventNamespace (it ignores the __new__ overloads pyright uses)
                    "red",
                    "cancel-task",
                ),
            ),
            rx.cond(
                TaskDetailState.can_retry,
                confirm(
                    "Retry",
                    "Run this task again?",
                    "It is queued again with a fresh set of attempts.",
                    TaskDetailState.retry,  # type: ignore[arg-type]  # mypy reads rx.event's handlers as EventNamespace (it ignores the __new__ overloads pyright uses)
                    "indigo",
                    "retry-task",
                ),
            ),
            rx.link(rx.button("All tasks", variant="soft"), href="/dashboard/tasks"),
        ),
    )
