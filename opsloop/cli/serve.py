"""`opsloop serve`: the API, streams and dispatcher; with `--dashboard`, also the Reflex state
socket and the built dashboard (when `.web/build/client` exists) on the same port. Request heads
are bounded and repeated log errors rate-limited (`opsloop.backend.http_server`)."""

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
    from opsloop.backend import http_server

    target = "opsloop.backend.api.asgi:app"
    if args.dashboard:
        from opsloop.cli.frontend import BUILD_DIR, serve_env

        env = serve_env(dict(os.environ))
        if not BUILD_DIR.exists():  # backend only: the state socket for a dashboard served elsewhere
            env.pop("__REFLEX_MOUNT_FRONTEND_COMPILED_APP", None)
        os.environ.update(env)
        target = "opsloop.opsloop:app"  # Reflex's ASGI factory, with our API mounted inside
    http_server.run(
        target,
        factory=args.dashboard,
        host=args.host,
        port=args.port,
        ws_ping_interval=20,
        ws_ping_timeout=20,
        ws_per_message_deflate=False,  # /ws fans one change out to many clients: compressing each copy costs more CPU than the frame
    )
    return 0
