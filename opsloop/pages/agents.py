"""Agents: registered agents and app instances, their task types and last heartbeat."""

from __future__ import annotations

import reflex as rx
from reflex.vars.object import ObjectVar

from opsloop.components.layout import empty_state, page
from opsloop.state.agents import AgentsState


def agent_row(r: ObjectVar[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(r["slug"], weight="medium")),
        rx.table.cell(r["kind"]),
        rx.table.cell(r["types"]),
        rx.table.cell(rx.cond(r["url"] != "", rx.code(r["url"]), rx.text("-")), display=["none", "table-cell"]),
        rx.table.cell(r["age"]),
        rx.table.cell(rx.badge(r["live"], color_scheme=rx.cond(r["live"] == "live", "green", "orange"))),
        class_name="agent-row",
        data_slug=r["slug"],
        data_live=r["live"],
    )


def agents_page() -> rx.Component:
    return page(
        "Agents",
        rx.card(
            rx.cond(
                AgentsState.rows.length() > 0,
                rx.table.root(
                    rx.table.header(
                        rx.table.row(
                            *[rx.table.column_header_cell(h) for h in ("Slug", "Kind", "Task types")],
                            rx.table.column_header_cell("URL", display=["none", "table-cell"]),
                            rx.table.column_header_cell("Last heartbeat"),
                            rx.table.column_header_cell("State"),
                        )
                    ),
                    rx.table.body(rx.foreach(AgentsState.rows, agent_row)),
                    size="1",
                    id="agents-table",
                ),
                empty_state("No agent has registered yet.", "bot"),
            )
        ),
    )
