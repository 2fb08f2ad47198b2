"""Render view: services with their latest deploy, deploy and env actions, render.yaml plan and
apply, the monitor's fixes, and the latest Render tasks (every action here is one of them)."""

from __future__ import annotations

import reflex as rx
from reflex.vars.object import ObjectVar

from opsloop.components.badges import status_badge
from opsloop.components.layout import empty_state, error_callout, page
from opsloop.render.state import TYPES, RenderState

DEPLOY_COLORS = {
    "live": "green",
    "build_failed": "red",
    "update_failed": "red",
    "pre_deploy_failed": "red",
    "created": "blue",
    "queued": "blue",
    "build_in_progress": "blue",
    "update_in_progress": "blue",
    "pre_deploy_in_progress": "blue",
    "canceled": "orange",
    "deactivated": "gray",
}
ACTION_COLORS = {"create": "green", "update": "amber", "noop": "gray"}
OUTCOME_COLORS = {"fixed": "green", "pending": "blue", "failed": "red", "error": "red", "left_to_person": "amber"}


def badge(value: rx.Var[str], colors: dict[str, str], **props) -> rx.Component:
    return rx.match(
        value,
        *[(k, rx.badge(k.replace("_", " "), color_scheme=c, variant="soft", **props)) for k, c in colors.items()],
        rx.badge(value, color_scheme="gray", variant="soft", **props),
    )


def section(title: str | rx.Var[str], *children: rx.Component, actions: rx.Component | None = None, **props) -> rx.Component:
    return rx.card(
        rx.hstack(rx.heading(title, size="3"), rx.spacer(), actions or rx.fragment(), align="center", margin_bottom="0.75em"),
        *children,
        width="100%",
        **props,
    )


def service_row(row: ObjectVar[dict[str, str]]) -> rx.Component:
    busy = RenderState.busy == row["id"]
    return rx.table.row(
        rx.table.cell(
            rx.vstack(
                rx.text(row["name"], weight="medium"),
                rx.code(row["id"], size="1", variant="ghost"),
                spacing="0",
            )
        ),
        rx.table.cell(row["type"], display=["none", "table-cell"]),
        rx.table.cell(badge(row["status"], DEPLOY_COLORS, class_name="deploy-status"), data_status=row["status"]),
        rx.table.cell(rx.text(row["updated"], size="1"), display=["none", "none", "table-cell"]),
        rx.table.cell(
            rx.hstack(
                rx.button(
                    rx.cond(busy, rx.spinner(size="1"), rx.icon("rocket", size=14)),
                    "Deploy",
                    size="1",
                    variant="soft",
                    disabled=RenderState.busy != "",
                    on_click=RenderState.deploy(row["id"]),  # type: ignore[operator]  # mypy reads rx.event handlers as EventNamespace
                    class_name="deploy-button",
                ),
                rx.button(
                    rx.icon("key-round", size=14),
                    "Env",
                    size="1",
                    variant="soft",
                    color_scheme="gray",
                    on_click=RenderState.open_env(row["id"]),  # type: ignore[operator]  # mypy reads rx.event handlers as EventNamespace
                ),
                spacing="2",
            )
        ),
        class_name="service-row",
        data_service_id=row["id"],
        data_name=row["name"],
    )


def services_card() -> rx.Component:
    return section(
        "Services",
        rx.cond(
            RenderState.rows.length() > 0,
            rx.scroll_area(
                rx.table.root(
                    rx.table.header(
                        rx.table.row(
                            rx.table.column_header_cell("Service"),
                            rx.table.column_header_cell("Type", display=["none", "table-cell"]),
                            rx.table.column_header_cell("Latest deploy"),
                            rx.table.column_header_cell("Updated", display=["none", "none", "table-cell"]),
                            rx.table.column_header_cell("Actions"),
                        )
                    ),
                    rx.table.body(rx.foreach(RenderState.rows, service_row)),
                    size="1",
                    id="render-services",
                ),
                type="auto",
                scrollbars="horizontal",
            ),
            rx.cond(RenderState.loading, rx.center(rx.spinner(), padding="2em"), empty_state("No Render services match.", "server")),
        ),
        rx.hstack(
            rx.button("← Prev", size="1", variant="soft", on_click=RenderState.prev_page, disabled=RenderState.page <= 1),
            rx.text(RenderState.page_label, size="1", color_scheme="gray", id="render-page"),
            rx.button("Next →", size="1", variant="soft", on_click=RenderState.next_page, disabled=~RenderState.has_next),
            justify="center",
            align="center",
            margin_top="0.75em",
        ),
        actions=rx.select(
            ["all types", *TYPES],
            value=rx.cond(RenderState.type_filter != "", RenderState.type_filter, "all types"),
            on_change=RenderState.set_type_filter,
            size="1",
            id="render-type-filter",
        ),
    )


def env_card() -> rx.Component:
    return rx.cond(
        RenderState.env_service != "",
        section(
            "Environment of " + RenderState.env_name,
            rx.grid(
                rx.box(
                    rx.text("Current variables (secret-looking values masked)", size="1", color_scheme="gray"),
                    rx.cond(
                        RenderState.env_current.length() > 0,
                        rx.vstack(
                            rx.foreach(
                                RenderState.env_current,
                                lambda kv: rx.hstack(rx.code(kv[0], size="1"), rx.text(kv[1], size="1", trim="both"), spacing="2"),
                            ),
                            spacing="1",
                            margin_top="0.5em",
                            id="env-current",
                        ),
                        rx.text("none", size="1", color_scheme="gray", margin_top="0.5em"),
                    ),
                ),
                rx.vstack(
                    rx.text_area(
                        value=RenderState.env_text,
                        on_change=RenderState.set_env_text,
                        placeholder="KEY=value, one per line",
                        rows="5",
                        width="100%",
                        font_family="monospace",
                        id="env-text",
                    ),
                    rx.hstack(
                        rx.switch(checked=RenderState.env_clear, on_change=RenderState.set_env_clear, id="env-clear"),
                        rx.text("Replace all variables (otherwise merge)", size="2"),
                        align="center",
                    ),
                    rx.cond(
                        RenderState.env_confirm != "",
                        rx.vstack(
                            rx.callout(RenderState.env_confirm, icon="triangle-alert", color_scheme="red", size="1", width="100%"),
                            rx.hstack(
                                rx.button("Replace all", color_scheme="red", on_click=RenderState.confirm_replace, id="env-replace-confirm"),
                                rx.button("Cancel", variant="soft", color_scheme="gray", on_click=RenderState.cancel_replace),
                                spacing="2",
                            ),
                            spacing="2",
                            width="100%",
                            id="env-replace-warning",
                        ),
                    ),
                    rx.hstack(
                        rx.button(
                            rx.cond(RenderState.busy == "env", rx.spinner(size="1"), rx.icon("save", size=14)),
                            "Save",
                            on_click=RenderState.save_env,
                            disabled=RenderState.busy != "",
                            id="env-save",
                        ),
                        rx.button("Close", variant="soft", color_scheme="gray", on_click=RenderState.close_env),
                        spacing="2",
                    ),
                    width="100%",
                ),
                columns=rx.breakpoints(initial="1", md="2"),
                spacing="4",
            ),
            id="env-panel",
        ),
    )


def plan_row(row: ObjectVar[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.vstack(rx.text(row["name"], weight="medium"), rx.text(row["type"], size="1", color_scheme="gray"), spacing="0")),
        rx.table.cell(badge(row["action"], ACTION_COLORS)),
        rx.table.cell(
            rx.text(row["changes"], size="1", white_space="pre-wrap", font_family="monospace"),
            rx.cond(row["warnings"] != "", rx.text(row["warnings"], size="1", color_scheme="amber", white_space="pre-wrap")),
        ),
        class_name="plan-row",
        data_action=row["action"],
    )


def applied_row(row: ObjectVar[dict[str, str]]) -> rx.Component:
    return rx.hstack(
        badge(row["ok"], {"ok": "green", "failed": "red", "not attempted": "gray"}),
        rx.text(row["service"], weight="medium", size="2"),
        rx.text(row["action"], size="2", color_scheme="gray"),
        rx.text(row["detail"], size="1"),
        align="center",
        spacing="2",
        class_name="applied-step",
    )


def blueprint_card() -> rx.Component:
    apply_button = rx.alert_dialog.root(
        rx.alert_dialog.trigger(
            rx.button(
                rx.cond(RenderState.busy == "apply", rx.spinner(size="1"), rx.icon("play", size=14)),
                "Apply",
                disabled=(~RenderState.plan_loaded) | RenderState.plan_noop | (RenderState.busy != ""),
                id="blueprint-apply",
            )
        ),
        rx.alert_dialog.content(
            rx.alert_dialog.title("Apply render.yaml?"),
            rx.alert_dialog.description("opsloop will create and update the services shown in the plan on Render, as a render.apply task."),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button("Cancel", variant="soft", color_scheme="gray")),
                rx.alert_dialog.action(rx.button("Apply", on_click=RenderState.apply_plan, id="blueprint-apply-confirm")),
                justify="end",
                margin_top="1em",
            ),
        ),
    )
    return section(
        "Blueprint (render.yaml)",
        rx.cond(
            RenderState.plan_loaded,
            rx.vstack(
                rx.cond(
                    RenderState.plan_noop,
                    rx.callout("Render matches render.yaml: nothing to apply.", icon="check", color_scheme="green", size="1", id="plan-noop"),
                ),
                rx.table.root(
                    rx.table.header(
                        rx.table.row(
                            rx.table.column_header_cell("Service"), rx.table.column_header_cell("Action"), rx.table.column_header_cell("Changes")
                        )
                    ),
                    rx.table.body(rx.foreach(RenderState.plan, plan_row)),
                    size="1",
                    width="100%",
                    id="blueprint-plan",
                ),
                rx.foreach(RenderState.plan_notes, lambda n: rx.text(n, size="1", color_scheme="gray")),
                width="100%",
            ),
            rx.text("Plan compares render.yaml with the account: what apply would create or change, secrets masked.", size="2", color_scheme="gray"),
        ),
        rx.cond(
            RenderState.applied.length() > 0, rx.vstack(rx.foreach(RenderState.applied, applied_row), margin_top="0.75em", id="blueprint-applied")
        ),
        actions=rx.hstack(
            rx.button(
                rx.cond(RenderState.busy == "plan", rx.spinner(size="1"), rx.icon("list-tree", size=14)),
                "Plan",
                variant="soft",
                on_click=RenderState.make_plan,
                disabled=RenderState.busy != "",
                id="blueprint-plan-button",
            ),
            apply_button,
            spacing="2",
        ),
    )


def fix_row(row: ObjectVar[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(row["when"], size="1")),
        rx.table.cell(rx.text(row["service"], weight="medium")),
        rx.table.cell(rx.text(row["problem"], size="1")),
        rx.table.cell(rx.text(row["action"], size="1")),
        rx.table.cell(badge(row["outcome"], OUTCOME_COLORS)),
        rx.table.cell(rx.cond(row["task_id"] != "", rx.link(rx.code("task"), href="/dashboard/tasks/" + row["task_id"]), rx.text("—", size="1"))),
        class_name="fix-row",
        data_outcome=row["outcome"],
    )


def fixes_card() -> rx.Component:
    return section(
        "Monitor fixes",
        rx.text("Monitor: ", RenderState.monitor, size="1", color_scheme="gray", margin_bottom="0.5em"),
        rx.cond(
            RenderState.fixes.length() > 0,
            rx.scroll_area(
                rx.table.root(
                    rx.table.header(
                        rx.table.row(
                            rx.table.column_header_cell("When"),
                            rx.table.column_header_cell("Service"),
                            rx.table.column_header_cell("Problem"),
                            rx.table.column_header_cell("Fix or reason"),
                            rx.table.column_header_cell("Outcome"),
                            rx.table.column_header_cell("Task"),
                        )
                    ),
                    rx.table.body(rx.foreach(RenderState.fixes, fix_row)),
                    size="1",
                    id="render-fixes",
                ),
                type="auto",
                scrollbars="horizontal",
            ),
            empty_state("No failed static-site builds seen yet.", "shield-check"),
        ),
    )


def task_item(row: ObjectVar[dict[str, str]]) -> rx.Component:
    return rx.hstack(
        rx.link(rx.code(row["short_id"]), href="/dashboard/tasks/" + row["id"]),
        rx.text(row["type"], size="2"),
        status_badge(row["status"]),
        rx.text(row["source"], size="1", color_scheme="gray"),
        rx.spacer(),
        rx.text(row["updated"], size="1", color_scheme="gray"),
        align="center",
        spacing="2",
        width="100%",
        class_name="render-task",
    )


def tasks_card() -> rx.Component:
    return section(
        "Latest Render tasks",
        rx.cond(
            RenderState.tasks.length() > 0,
            rx.vstack(rx.foreach(RenderState.tasks, task_item), spacing="1", width="100%", id="render-tasks"),
            empty_state("No Render changes yet.", "history"),
        ),
        actions=rx.link("all", href="/dashboard/tasks?type=render.deploy", size="1"),
    )


def not_configured() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.icon("cloud-off", size=36, color=rx.color("gray", 8)),
            rx.heading("Render is not configured", size="4"),
            rx.text(
                "Set RENDER_API_TOKEN (and RENDER_API_BASE_URL to use `opsloop render fake` locally), then restart opsloop. "
                "The monitor also needs RENDER_MONITOR_SERVICES.",
                color_scheme="gray",
                size="2",
                text_align="center",
                max_width="40em",
            ),
            align="center",
            spacing="3",
            padding="3em",
        ),
        id="render-not-configured",
    )


def render_page() -> rx.Component:
    return page(
        "Render",
        rx.cond(
            RenderState.configured,
            rx.vstack(
                rx.text("API: ", rx.code(RenderState.api, size="1"), size="1", color_scheme="gray"),
                error_callout(RenderState.error),
                rx.cond(RenderState.notice != "", rx.callout(RenderState.notice, icon="check", color_scheme="green", size="1", id="render-notice")),
                services_card(),
                env_card(),
                rx.grid(blueprint_card(), tasks_card(), columns=rx.breakpoints(initial="1", lg="2"), spacing="4", width="100%"),
                fixes_card(),
                spacing="4",
                width="100%",
            ),
            rx.cond(RenderState.loading, rx.center(rx.spinner(), padding="2em"), not_configured()),
        ),
        actions=rx.cond(
            RenderState.configured,
            rx.button(rx.icon("refresh-cw", size=14), "Refresh", variant="soft", on_click=RenderState.refresh, id="render-refresh"),
        ),
    )
