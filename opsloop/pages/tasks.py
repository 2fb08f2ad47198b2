"""Tasks view: filters (kept in the URL), counts by status, a keyset-paged table updated live."""

from __future__ import annotations

import reflex as rx

from opsloop.backend.models import TASK_STATUSES
from opsloop.components.badges import STATUS_COLORS, status_badge
from opsloop.components.layout import empty_state, error_callout, page
from opsloop.state.tasks import TasksState


def count_chip(item: rx.Var[list[str]]) -> rx.Component:
    return rx.button(
        item[0],
        rx.badge(item[1], variant="solid", radius="full"),
        on_click=TasksState.filter_status(item[0]),
        variant=rx.cond(TasksState.status == item[0], "solid", "soft"),
        size="1",
        class_name="count-chip",
        data_status=item[0],
        color_scheme=rx.match(item[0], *[(s, c) for s, c in STATUS_COLORS.items()], "gray"),
    )


def filters() -> rx.Component:
    return rx.el.form(
        rx.flex(
            rx.select(
                ["any", *TASK_STATUSES],
                name="status",
                default_value=rx.cond(TasksState.status != "", TasksState.status, "any"),
                size="2",
                id="filter-status",
            ),
            rx.input(name="type", placeholder="type", default_value=TasksState.type, id="filter-type", size="2"),
            rx.input(name="corr", placeholder="correlation id", default_value=TasksState.corr, id="filter-corr", size="2"),
            rx.input(name="trace", placeholder="trace id", default_value=TasksState.trace, id="filter-trace", size="2"),
            rx.select(
                ["any", "15m", "1h", "24h", "7d"],
                name="window",
                default_value=rx.cond(TasksState.window != "", TasksState.window, "any"),
                size="2",
                id="filter-window",
            ),
            rx.button("Apply", type="submit", id="apply-filters", size="2"),
            rx.button("Clear", type="button", variant="soft", on_click=TasksState.clear_filters, size="2"),
            spacing="2",
            wrap="wrap",
            align="center",
        ),
        on_submit=TasksState.apply_filters,
        reset_on_submit=False,
        key=TasksState.router.url.query,
    )


def task_table_row(row: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.link(rx.code(row["short_id"]), href="/dashboard/tasks/" + row["id"])),
        rx.table.cell(row["type"]),
        rx.table.cell(status_badge(row["status"])),
        rx.table.cell(row["agent"]),
        rx.table.cell(row["source"], display=["none", "none", "table-cell"]),
        rx.table.cell(rx.text(row["correlation_id"], size="1", trim="both"), display=["none", "none", "table-cell"]),
        rx.table.cell(row["attempts"]),
        rx.table.cell(row["duration"], display=["none", "table-cell"]),
        rx.table.cell(row["updated"]),
        class_name="task-row",
        data_task_id=row["id"],
        data_status=row["status"],
    )


def tasks_page() -> rx.Component:
    return page(
        "Tasks",
        rx.hstack(rx.foreach(TasksState.counts, count_chip), wrap="wrap", spacing="2", margin_bottom="0.75em", id="status-counts"),
        filters(),
        error_callout(TasksState.error),
        rx.card(
            rx.cond(
                TasksState.rows.length() > 0,
                rx.scroll_area(
                    rx.table.root(
                        rx.table.header(
                            rx.table.row(
                                rx.table.column_header_cell("Task"),
                                rx.table.column_header_cell("Type"),
                                rx.table.column_header_cell("Status"),
                                rx.table.column_header_cell("Agent"),
                                rx.table.column_header_cell("Source", display=["none", "none", "table-cell"]),
                                rx.table.column_header_cell("Correlation", display=["none", "none", "table-cell"]),
                                rx.table.column_header_cell("Attempts"),
                                rx.table.column_header_cell("Duration", display=["none", "table-cell"]),
                                rx.table.column_header_cell("Updated"),
                            )
                        ),
                        rx.table.body(rx.foreach(TasksState.rows, task_table_row)),
                        size="1",
                        id="tasks-table",
                    ),
                    type="auto",
                    scrollbars="horizontal",
                ),
                rx.cond(TasksState.loading, rx.center(rx.spinner(), padding="2em"), empty_state("No tasks match these filters.", "list-checks")),
            ),
            margin_top="1em",
        ),
        rx.hstack(
            rx.button("← Newer", on_click=TasksState.prev_page, disabled=TasksState.page <= 1, variant="soft", id="prev-page"),
            rx.text("page ", TasksState.page, size="2", id="page-number"),
            rx.button("Older →", on_click=TasksState.next_page, disabled=~TasksState.has_next, variant="soft", id="next-page"),
            justify="center",
            align="center",
            margin_top="1em",
        ),
        actions=rx.link(rx.button(rx.icon("plus", size=14), "New task"), href="/dashboard/new"),
    )
