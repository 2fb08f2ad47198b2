"""`opsloop serve`: the API, streams and dispatcher without the dashboard (extra instances)."""

from __future__ import annotations

import argparse
import os


def run(args: argparse.Namespace) -> int:
    from opsloop.backend.config import require_valid_config

    require_valid_config("app")
    from opsloop.backend import db

    db.database_url()  # start the embedded server if none is configured
    if not args.no_migrate:
        db.upgrade_database()
    if args.no_dispatch:
        os.environ["OPSLOOP_DISPATCH"] = "0"
    import uvicorn

    uvicorn.run(
        "opsloop.backend.api.asgi:app",
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        ws_ping_interval=20,
        ws_ping_timeout=20,
    )
    return 0
