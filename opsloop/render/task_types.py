"""The Render agent's contract with the task core: its slug, task types and their limits."""

from __future__ import annotations

SLUG = "render"
LOCAL_URL = "local://render"
ACTOR = "render"
TASK_TYPES = ("render.deploy", "render.env", "render.create", "render.apply", "render.autofix")
# Per type: attempts (writes that create something get one), time allowed, backoff base.
LIMITS: dict[str, dict[str, int]] = {
    "render.deploy": {"maxAttempts": 1, "timeoutMs": 120_000, "backoffMs": 2_000},
    "render.env": {"maxAttempts": 3, "timeoutMs": 120_000, "backoffMs": 2_000},
    "render.create": {"maxAttempts": 1, "timeoutMs": 120_000, "backoffMs": 2_000},
    "render.apply": {"maxAttempts": 1, "timeoutMs": 3_600_000, "backoffMs": 2_000},
    "render.autofix": {"maxAttempts": 1, "timeoutMs": 3_600_000, "backoffMs": 2_000},
}
