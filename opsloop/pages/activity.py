"""Activity stream: task updates, events and log lines as they happen, newest on top."""

from __future__ import annotations

import reflex as rx
from reflex.vars.object import ObjectVar

from opsloop.backend.models import LOG_LEVELS
from opsloop.components.badges import level_badge
from opsloop.components.layout import empty_state, page
from opsloop.state.activity import ActivityState


def item(row: ObjectVar[dict[str, str]]) -> rx.Component:
    return rx.hstack(
        rx.text(row["time"], size="1", color_scheme="gray", font_family="monospace", min_width="64px"),
        rx.badge(row["kind"], variant="surface", size="1", min_width="44px"),
        level_badge(row["level"]),
        rx.text(row["service"], size="1", weight="medium", min_width="110px"),
        rx.cond(
            row["task_id"] != "",
            rx.link(rx.text(row["text"], size="1"), href="/dashboard/tasks/" + row["task_id"], color_scheme="gray", high_contrast=True),
            rx.text(row["text"], size="1"),
        ),
        class_name="activity-item",
        data_kind=row["kind"],
        key=row["key"],
        spacing="2",
        align="center",
        padding_y="2px",
        border_bottom=f"1px solid {rx.color('gray', 3)}",
        width="100%",
    )


def activity_page() -> rx.Component:
    return page(
        "Activity",
        rx.el.form(
            rx.hstack(
                rx.select(
                    ["any", *LOG_LEVELS],
                    name="level",
                    default_value=rx.cond(ActivityState.level != "", ActivityState.level, "any"),
                    id="activity-level",
                ),
                rx.input(name="service", placeholder="service", default_value=ActivityState.service, id="activity-service"),
                rx.button("Filter", type="submit"),
                wrap="wrap",
            ),
            on_submit=ActivityState.set_filter,
            reset_on_submit=False,
            key=ActivityState.router.url.query,
        ),
        rx.card(
            rx.cond(
                ActivityState.items.length() > 0,
                rx.vstack(rx.foreach(ActivityState.items, item), spacing="0", id="activity-list", width="100%"),
                empty_state("Nothing has happened yet. Create a task to see it here.", "activity"),
            ),
            margin_top="1em",
        ),
        rx.center(
            rx.button("Load older", on_click=ActivityState.load_older, loading=ActivityState.loading, variant="soft", id="load-older"),
            margin_top="1em",
        ),
        actions=rx.button(
            rx.cond(ActivityState.paused, rx.text("Resume (", ActivityState.pending, " new)"), rx.text("Pause")),
            on_click=ActivityState.toggle_pause,
            variant="soft",
            id="pause-activity",
        ),
    )
