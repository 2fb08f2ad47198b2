"""Views whose data arrives with later work: each shows its empty state inside the shell."""

from __future__ import annotations

import reflex as rx

from opsloop.components.layout import empty_state, page


def simple_page(title: str, message: str, icon: str) -> rx.Component:
    return page(title, rx.card(empty_state(message, icon)))
