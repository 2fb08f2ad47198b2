"""`python -m agents.echo [--port N]`: validate configuration, then serve the echo agent (bounded
request heads and rate-limited repeated errors, as every server of ours: `http_server.run`)."""

from __future__ import annotations

import argparse
import os
from urllib.parse import urlparse


def main() -> None:
    from opsloop.backend.config import get_settings, require_valid_config

    parser = argparse.ArgumentParser(prog="python -m agents.echo", description="The opsloop echo agent.")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=None, help="default: PORT, else ECHO_AGENT_URL's port")
    args = parser.parse_args()
    require_valid_config("echo-agent")
    port = args.port or int(os.environ.get("PORT") or urlparse(get_settings().ECHO_AGENT_URL).port or 3001)
    from opsloop.backend import http_server

    http_server.run("agents.echo.app:app", host=args.host, port=port)


if __name__ == "__main__":
    main()
