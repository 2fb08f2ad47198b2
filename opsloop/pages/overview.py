"""Overview: task outcomes and p95 duration per minute, log lines per minute by level."""

from __future__ import annotations

from typing import cast

import reflex as rx
from reflex.vars.object import ObjectVar

from opsloop.components.layout import page
from opsloop.state.overview import OverviewState


def totals() -> ObjectVar[dict[str, int]]:
    """The totals as the object var they are (Reflex 0.10.1 types a dict Field as an ArrayVar)."""
    return cast(ObjectVar[dict[str, int]], OverviewState.totals)


def stat(label: str, key: str, color: str) -> rx.Component:
    return rx.card(
        rx.text(label, size="1", color_scheme="gray"),
        rx.heading(totals().get(key, 0), size="6", color_scheme=color),
        min_width="140px",
        class_name="overview-stat",
    )


def chart_card(title: str, chart: rx.Component) -> rx.Component:
    return rx.card(rx.text(title, weight="bold", size="2"), chart, width="100%")


def overview_page() -> rx.Component:
    return page(
        "Overview",
        rx.hstack(
            stat("Queued", "queued", "gray"),
            stat("Running", "running", "blue"),
            stat("Done", "done", "green"),
            stat("Failed", "error", "red"),
            wrap="wrap",
            spacing="3",
            margin_bottom="1em",
        ),
        rx.grid(
            chart_card(
                "Tasks finished per bucket, by status",
                rx.recharts.bar_chart(
                    rx.recharts.bar(data_key="done", stack_id="s", fill=rx.color("green", 9)),
                    rx.recharts.bar(data_key="error", stack_id="s", fill=rx.color("red", 9)),
                    rx.recharts.bar(data_key="cancelled", stack_id="s", fill=rx.color("orange", 9)),
                    rx.recharts.x_axis(data_key="bucket"),
                    rx.recharts.y_axis(),
                    rx.recharts.legend(),
                    rx.recharts.graphing_tooltip(),
                    data=OverviewState.tasks,
                    height=260,
                ),
            ),
            chart_card(
                "p95 duration (ms), created → done",
                rx.recharts.line_chart(
                    rx.recharts.line(data_key="p95_ms", stroke=rx.color("accent", 9), dot=False),
                    rx.recharts.x_axis(data_key="bucket"),
                    rx.recharts.y_axis(),
                    rx.recharts.graphing_tooltip(),
                    data=OverviewState.tasks,
                    height=260,
                ),
            ),
            chart_card(
                "Log lines per bucket, by level",
                rx.recharts.area_chart(
                    rx.recharts.area(data_key="info", stack_id="l", fill=rx.color("blue", 7), stroke=rx.color("blue", 9)),
                    rx.recharts.area(data_key="warn", stack_id="l", fill=rx.color("amber", 7), stroke=rx.color("amber", 9)),
                    rx.recharts.area(data_key="error", stack_id="l", fill=rx.color("red", 7), stroke=rx.color("red", 9)),
                    rx.recharts.area(data_key="debug", stack_id="l", fill=rx.color("gray", 7), stroke=rx.color("gray", 9)),
                    rx.recharts.x_axis(data_key="bucket"),
                    rx.recharts.y_axis(),
                    rx.recharts.legend(),
                    rx.recharts.graphing_tooltip(),
                    data=OverviewState.logs,
                    height=260,
                ),
            ),
            columns=rx.breakpoints(initial="1", lg="2"),
            spacing="3",
            id="overview-charts",
        ),
        actions=rx.segmented_control.root(
            rx.segmented_control.item("Last hour", value="1h"),
            rx.segmented_control.item("Last day", value="24h"),
            value=OverviewState.window,
            on_change=OverviewState.set_window,
        ),
    )
