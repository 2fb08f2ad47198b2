"""Where Render's reference data is: render.yaml's schema (Blueprint checks) and the OpenAPI
document (the local fake's conformance checks), next to the repository."""

from __future__ import annotations

import os
from pathlib import Path

REFERENCE_DIR_ENV = "OPSLOOP_RENDER_REFERENCE_DIR"


def project_root() -> Path:
    """The repository root (this file lives in ``<root>/opsloop/render``)."""
    return Path(__file__).resolve().parents[2]


def reference_dir() -> Path:
    """Where Render's reference data lives (``OPSLOOP_RENDER_REFERENCE_DIR`` wins)."""
    override = os.environ.get(REFERENCE_DIR_ENV)
    if override:
        return Path(override)
    return project_root().parent / "shared" / "render"
