"""`python -m agents.echo [--port N]`: validate configuration, then serve the echo agent (bounded
request heads and rate-limited repeated errors, as every server of ours: `http_server.run`)."""

from __future__ import annotations

import argparse
import os
from urllib.parse import urlparse


def main() -> None:
    from agents.sdk.config import AgentConfig
    from opsloop.shared import http_server
    from opsloop.shared.config_report import require_valid_config

    parser = argparse.ArgumentParser(prog="python -m agents.echo", description="The opsloop echo agent.")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=None, help="default: PORT, else ECHO_AGENT_URL's port")
    args = parser.parse_args()
    require_valid_config("echo-agent")
    config = AgentConfig.from_env()
    port = args.port or int(os.environ.get("PORT") or urlparse(config.url("ECHO_AGENT_URL", "http://127.0.0.1:3001")).port or 3001)
    http_server.run("agents.echo.app:app", host=args.host, port=port, limits=config.http, repeat_window_s=config.log_repeat_window_s)


if __name__ == "__main__":
    main()
