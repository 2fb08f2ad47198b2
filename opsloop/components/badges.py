"""Status and level badges, the same colours everywhere."""

from __future__ import annotations

import reflex as rx

STATUS_COLORS = {"queued": "gray", "running": "blue", "done": "green", "error": "red", "cancelled": "orange"}
LEVEL_COLORS = {"debug": "gray", "info": "blue", "warn": "amber", "error": "red"}


def status_badge(status: rx.Var[str]) -> rx.Component:
    return rx.match(
        status,
        *[(s, rx.badge(s, color_scheme=c, variant="soft", class_name="status-badge")) for s, c in STATUS_COLORS.items()],
        rx.badge(status, class_name="status-badge"),
    )


def level_badge(level: rx.Var[str]) -> rx.Component:
    return rx.match(
        level,
        *[(lv, rx.badge(lv, color_scheme=c, variant="outline", size="1")) for lv, c in LEVEL_COLORS.items()],
        rx.badge(level, size="1"),
    )
