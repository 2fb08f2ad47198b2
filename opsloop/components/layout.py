"""The page frame every view shares: navigation, the signed-in user, and a content area."""

from __future__ import annotations

import reflex as rx

from opsloop.state.session import SessionState

NAV = [
    ("Overview", "/", "layout-dashboard"),
    ("Activity", "/dashboard/activity", "activity"),
    ("Tasks", "/dashboard/tasks", "list-checks"),
    ("New task", "/dashboard/new", "circle-plus"),
    ("Agents", "/dashboard/agents", "bot"),
    ("Configuration", "/dashboard/config", "settings"),
    ("Render", "/dashboard/render", "cloud"),
]


def nav_link(label: str, href: str, icon: str) -> rx.Component:
    return rx.link(
        rx.hstack(rx.icon(icon, size=16), rx.text(label, size="2"), align="center", spacing="2"),
        href=href,
        underline="none",
        color_scheme="gray",
        high_contrast=True,
        padding_x="0.75em",
        padding_y="0.4em",
        border_radius="6px",
        flex_shrink="0",
        white_space="nowrap",
        _hover={"background": rx.color("gray", 4)},
        id=f"nav-{label.lower().replace(' ', '-')}",
    )


def navbar() -> rx.Component:
    return rx.box(
        rx.hstack(
            rx.hstack(rx.icon("refresh-cw", size=20, color=rx.color("accent", 10)), rx.heading("opsloop", size="4"), align="center"),
            # On a phone the links take a row of their own below the name and the user, scrolled
            # sideways, rather than wrapping into a header taller than the page's first screen.
            rx.hstack(
                *[nav_link(*item) for item in NAV],
                spacing="1",
                wrap=rx.breakpoints(initial="nowrap", md="wrap"),
                flex="1",
                flex_basis=rx.breakpoints(initial="100%", md="auto"),
                order=rx.breakpoints(initial="3", md="0"),
                justify=rx.breakpoints(initial="start", md="center"),
                overflow_x="auto",
                id="nav-links",
            ),
            rx.hstack(
                rx.text(SessionState.user, size="2", color_scheme="gray", id="signed-in-user"),
                rx.el.form(
                    rx.button("Log out", size="1", variant="soft", type="submit", id="logout"),
                    action="/auth/logout",
                    method="post",
                    on_submit=None,
                ),
                align="center",
            ),
            align="center",
            justify="between",
            wrap="wrap",
            spacing=rx.breakpoints(initial="2", md="4"),
        ),
        padding_x="1.5em",
        padding_y="0.75em",
        border_bottom=f"1px solid {rx.color('gray', 5)}",
        background=rx.color("gray", 1),
        position="sticky",
        top="0",
        z_index="10",
    )


def page(title: str, *children: rx.Component, actions: rx.Component | None = None) -> rx.Component:
    """A signed-in page: nothing is shown until the session check has found a user."""
    return rx.box(
        navbar(),
        rx.cond(
            SessionState.user != "",
            rx.box(
                rx.hstack(rx.heading(title, size="6", id="page-title"), rx.spacer(), actions or rx.fragment(), align="center"),
                rx.box(*children, margin_top="1em"),
                padding="1.5em",
                max_width="1400px",
                margin_x="auto",
            ),
            rx.center(rx.spinner(size="3"), padding="4em"),
        ),
        min_height="100vh",
        background=rx.color("gray", 2),
        # Solid panels: Radix's default translucent panel puts a blur(64px) backdrop filter behind
        # every card, which Chromium recomposites on every live update (in software, ~60 ms of
        # CPU per frame with the tasks table inside a card). Over the flat page background the
        # blur is invisible anyway.
        style={"--color-panel": "var(--color-panel-solid)", "--backdrop-filter-panel": "none"},
    )


def empty_state(message: str, icon: str = "inbox") -> rx.Component:
    return rx.center(
        rx.vstack(rx.icon(icon, size=32, color=rx.color("gray", 8)), rx.text(message, color_scheme="gray"), align="center"),
        padding="3em",
        width="100%",
    )


def error_callout(message: rx.Var[str]) -> rx.Component:
    return rx.cond(message != "", rx.callout(message, icon="triangle-alert", color_scheme="red", role="alert", margin_bottom="1em"))
