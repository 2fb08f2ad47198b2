"""The login page: a native form POST to /auth/login (which sets the HttpOnly session cookie)."""

from __future__ import annotations

import reflex as rx

from opsloop.state.session import LoginState


def login_page() -> rx.Component:
    return rx.center(
        rx.card(
            rx.el.form(
                rx.vstack(
                    rx.hstack(rx.icon("refresh-cw", size=24), rx.heading("opsloop", size="6"), align="center"),
                    rx.text("Sign in to the operations dashboard", color_scheme="gray", size="2"),
                    rx.cond(
                        LoginState.failed,
                        rx.callout("Wrong user name or password.", icon="triangle-alert", color_scheme="red", id="login-error", width="100%"),
                    ),
                    rx.text("User", size="2", weight="medium"),
                    rx.input(name="username", id="username", placeholder="admin", auto_complete="username", required=True, width="100%"),
                    rx.text("Password", size="2", weight="medium"),
                    rx.input(name="password", id="password", type="password", auto_complete="current-password", required=True, width="100%"),
                    rx.el.input(type="hidden", name="next", value=LoginState.next_path),
                    rx.button("Sign in", type="submit", id="sign-in", width="100%", size="3"),
                    spacing="3",
                    width="100%",
                ),
                action="/auth/login",
                method="post",
                on_submit=None,
            ),
            width="min(380px, 92vw)",
            size="4",
        ),
        min_height="100vh",
        background=rx.color("gray", 2),
    )
