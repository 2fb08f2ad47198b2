"""Tasks view: filters (kept in the URL), counts by status, a keyset-paged table updated live."""

from __future__ import annotations

import reflex as rx
from reflex.vars.object import ObjectVar
from reflex.vars.sequence import ArrayVar
from reflex_components_core.react_router import link as router_link

from opsloop.backend.models import TASK_STATUSES
from opsloop.components.badges import STATUS_COLORS
from opsloop.components.layout import empty_state, error_callout, page
from opsloop.state.tasks import TaskRowsState, TasksState


def count_chip(item: ArrayVar[list[str]]) -> rx.Component:
    return rx.button(
        item[0],
        rx.badge(item[1], variant="solid", radius="full"),
        on_click=TasksState.filter_status(item[0]),  # type: ignore[operator]  # mypy reads rx.event's handlers as EventNamespace (it ignores the __new__ overloads pyright uses)
        variant=rx.cond(TasksState.status == item[0], "solid", "soft"),
        size="1",
        class_name="count-chip",
        data_status=item[0],
        data_count=item[1],
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


# The table is what changes many times a second in every open tab while tasks run (each live
# update is one render of it), so it is built for cheap updates, measured in Chromium:
# - Rows are keyed by position and memoized: when new tasks push the rows down, each row's
#   elements stay in place and only their text and attributes change; a row whose data did not
#   change is not re-rendered at all (Reflex keeps unchanged rows' identity when it applies a
#   delta). Inserting and removing row elements instead costs more: Radix's stylesheet has
#   `:has()` rules, and with them an inserted element makes Chromium recompute styles far beyond
#   the row.
# - Plain elements with Radix's table and badge classes (same look, none of the per-component prop
#   processing), styled once here rather than per cell. No Radix Table.Root (it wraps the table in
#   a scroll area, styled with `:has()` and resized by script) and no `rt-Code` (a `:has()` rule).
# - Rows are flex boxes with set column widths (elements with table roles) rather than a <table>,
#   where a changed cell re-lays out the whole table and the page around it. Rows below the fold
#   are not rendered until scrolled to (`content-visibility`).
CELL = "rt-TableCell"
WIDE = "col-wide"  # shown from 48em
NARROW = "col-narrow"  # shown from 30em
COLUMNS = [  # label, flex weight of its width, extra class
    ("Task", 1.2, ""),
    ("Type", 1.2, ""),
    ("Status", 1.0, ""),
    ("Agent", 1.0, ""),
    ("Source", 1.0, WIDE),
    ("Correlation", 1.6, WIDE),
    ("Attempts", 0.8, ""),
    ("Duration", 0.9, NARROW),
    ("Updated", 0.9, ""),
]
TABLE_CSS = {
    "& .rt-TableRootTable": {"min-width": "32em", "height": "auto"},  # Radix sets height 0 (a table idiom)
    "& .rt-TableRow": {"display": "flex"},
    "& .task-row": {"content-visibility": "auto", "contain-intrinsic-size": "auto calc(36px * var(--scaling))"},
    "& .rt-TableCell": {"min-width": "0", "white-space": "nowrap", "overflow": "hidden", "text-overflow": "ellipsis"},
    **{f"& .rt-TableCell:nth-child({i})": {"flex": f"{w} 1 0"} for i, (_, w, _) in enumerate(COLUMNS, 1)},
    "& .task-id": {
        "font-family": "var(--code-font-family)",
        "font-size": "calc(var(--code-font-size-adjust) * 0.95em)",
        "letter-spacing": "calc(var(--code-letter-spacing) + var(--letter-spacing, var(--default-letter-spacing)))",
        "border-radius": "calc((0.5px + 0.2em) * var(--radius-factor))",
        "padding": "var(--code-padding-top) var(--code-padding-right) var(--code-padding-bottom) var(--code-padding-left)",
        "background-color": "var(--accent-a3)",
        "color": "var(--accent-a11)",
        "text-decoration": "none",
    },
    "& .task-id:hover": {"background-color": "var(--accent-a4)"},
    "& .task-corr": {"font-size": "var(--font-size-1)", "color": "var(--gray-11)"},
    # The complements of Radix's `md` and `xs` breakpoints (min-width 48em / 30em), so that no width
    # is in both.
    "@media not all and (min-width: 48em)": {f"& .{WIDE}": {"display": "none"}},
    "@media not all and (min-width: 30em)": {f"& .{NARROW}": {"display": "none"}},
}


def _cell(content: rx.Var | rx.Component, extra: str = "", title: rx.Var | None = None) -> rx.Component:
    """A cell; text cut short by the column's width is shown whole in `title` (on hover)."""
    return rx.el.div(content, class_name=f"{CELL} {extra}".strip(), role="cell", title=title)


@rx.memo
def task_table_row(row: ObjectVar[dict[str, str]]) -> rx.Component:
    return rx.el.div(
        _cell(router_link(row["short_id"], to="/dashboard/tasks/" + row["id"], class_name="task-id")),
        _cell(row["type"], title=row["type"]),
        _cell(
            rx.el.span(
                row["status"],
                class_name="rt-reset rt-Badge rt-r-size-1 rt-variant-soft status-badge",
                data_accent_color=rx.match(row["status"], *STATUS_COLORS.items(), "gray"),
            )
        ),
        _cell(row["agent"], title=row["agent"]),
        _cell(row["source"], WIDE),
        _cell(row["correlation_id"], f"{WIDE} task-corr", title=row["correlation_id"]),
        _cell(row["attempts"]),
        _cell(row["duration"], NARROW),
        _cell(row["updated"]),
        class_name="rt-TableRow task-row",
        role="row",
        data_task_id=row["id"],
        data_status=row["status"],
    )


def tasks_table() -> rx.Component:
    header = [rx.el.div(label, class_name=f"{CELL} rt-TableColumnHeaderCell {cls}".strip(), role="columnheader") for label, _, cls in COLUMNS]
    return rx.el.div(
        rx.el.div(
            rx.el.div(
                rx.el.div(rx.el.div(*header, class_name="rt-TableRow", role="row"), class_name="rt-TableHeader", role="rowgroup"),
                rx.el.div(rx.foreach(TaskRowsState.rows, lambda row: task_table_row(row=row)), class_name="rt-TableBody", role="rowgroup"),
                class_name="rt-TableRootTable",
                role="table",
            ),
            overflow_x="auto",
        ),
        class_name="rt-TableRoot rt-r-size-1 rt-variant-ghost",
        id="tasks-table",
        style=TABLE_CSS,
    )


def tasks_page() -> rx.Component:
    return page(
        "Tasks",
        rx.hstack(rx.foreach(TasksState.counts, count_chip), wrap="wrap", spacing="2", margin_bottom="0.75em", id="status-counts"),
        filters(),
        error_callout(TasksState.error),
        rx.card(
            rx.cond(
                TaskRowsState.rows.length() > 0,
                tasks_table(),
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
