"""Garbage-collector tuning; its home is `opsloop.shared.gc_tuning` (the agents use it too)."""

from opsloop.shared.gc_tuning import tune_gc

__all__ = ["tune_gc"]
