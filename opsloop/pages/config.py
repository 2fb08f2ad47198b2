"""Configuration view: every service's `/config/validate` as a matrix, failing services first."""

from __future__ import annotations

import reflex as rx
from reflex.vars.sequence import ArrayVar

from opsloop.components.layout import error_callout, page
from opsloop.state.config import ConfigState

STATE_COLORS = {"present": "green", "missing": "red", "invalid": "red", "absent": "gray", "-": "gray"}


def state_badge(value: rx.Var[str]) -> rx.Component:
    return rx.match(
        value,
        *[(k, rx.badge(k, color_scheme=c, variant="soft")) for k, c in STATE_COLORS.items()],
        rx.badge(value),
    )


def service_status(item: ArrayVar[list[str]]) -> rx.Component:
    return rx.card(
        rx.hstack(
            rx.text(item[0], weight="bold"),
            rx.match(
                item[1],
                ("ok", rx.badge("ok", color_scheme="green", size="2")),
                rx.badge(item[1], color_scheme="red", size="2"),
            ),
            justify="between",
            align="center",
        ),
        class_name="service-status",
        min_width="220px",
        data_service=item[0],
        data_status=item[1],
    )


def config_page() -> rx.Component:
    return page(
        "Configuration",
        error_callout(ConfigState.error),
        rx.hstack(rx.foreach(ConfigState.statuses, service_status), wrap="wrap", spacing="3", margin_bottom="1em"),
        rx.cond(
            ConfigState.problems.length() > 0,
            rx.callout(
                rx.vstack(
                    rx.foreach(ConfigState.problems, lambda p: rx.text(rx.text.strong(p[0]), " · ", rx.code(p[1]), " ", p[2], size="2")),
                ),
                icon="triangle-alert",
                color_scheme="red",
                id="config-problems",
                margin_bottom="1em",
            ),
        ),
        rx.card(
            rx.scroll_area(
                rx.table.root(
                    rx.table.header(
                        rx.table.row(
                            rx.table.column_header_cell("Key"),
                            rx.foreach(ConfigState.services, lambda s: rx.table.column_header_cell(s)),
                        )
                    ),
                    rx.table.body(
                        rx.foreach(
                            ConfigState.rows,
                            lambda row: rx.table.row(
                                rx.table.row_header_cell(rx.code(row[0])),
                                rx.foreach(row[1:], lambda cell: rx.table.cell(state_badge(cell))),
                            ),
                        )
                    ),
                    size="1",
                    id="config-matrix",
                ),
                type="auto",
                scrollbars="horizontal",
            ),
        ),
        actions=rx.button(rx.icon("refresh-cw", size=14), "Refresh", on_click=ConfigState.load, loading=ConfigState.loading, variant="soft"),
    )
