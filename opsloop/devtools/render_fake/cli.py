"""`opsloop render fake`: the local Render from the command line, added to the Render plugin's
`render` group by the dev tools' own plugin (`plugin.py`), so the Render plugin never imports them."""

from __future__ import annotations

import argparse
import functools
import re
import sys
import tempfile
from pathlib import Path

from opsloop.render import cli as render_cli
from opsloop.render.cli import EXIT_OK, UsageError

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`render fake` in the `render` group (nothing when the Render plugin is not installed)."""
    group = render_cli.subcommands(sub)
    if group is None:
        return
    help = "run the local fake of Render's API (for development and tests)"
    fake = group.add_parser("fake", help=help, description=help)
    fake.set_defaults(func=functools.partial(render_cli.run, run_fake))  # each failure: one line and its exit code
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=10000)
    fake.add_argument("--token", help="Bearer token the fake requires (default: RENDER_API_TOKEN; none: any)")
    fake.add_argument("--build-seconds", type=float, default=2.0, help="simulated build time (default 2)")
    fake.add_argument("--rate-scale", type=float, default=1.0, help="multiply Render's rate limits (default 1: Render's own)")
    fake.add_argument("--work-dir", help="where deploys are checked out, built and run (default: a new temporary folder)")
    fake.add_argument("--build-venv", help="a virtualenv whose packages builds reuse instead of downloading (e.g. .venv)")
    fake.add_argument(
        "--repo-map", action="append", default=[], metavar="URL=PATH", help="clone this repository URL from a local git folder (repeatable)"
    )
    fake.add_argument(
        "--build-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra env for builds and processes, e.g. where a build tool is (repeatable)",
    )
    fake.add_argument("--postgres-url", help="PostgreSQL server (admin URL) for real Postgres instances, or `embedded`")
    fake.add_argument("--validate-openapi", action="store_true", help="check every exchange against Render's OpenAPI document")


def run_fake(args: argparse.Namespace) -> int:
    """`opsloop render fake`: check the arguments, start the embedded PostgreSQL when asked, serve."""
    from opsloop.backend.config import get_settings

    token = args.token if args.token is not None else (get_settings().RENDER_API_TOKEN or None)
    if token:
        _check_token(token)
    sys.stderr.write(
        f"fake Render API on http://{args.host}:{args.port}/v1 ({'token required' if token else 'any token'}); "
        f"point opsloop at it with RENDER_API_BASE_URL=http://{args.host}:{args.port}/v1\n"
    )
    if args.rate_scale <= 0:
        raise UsageError("--rate-scale must be positive")
    repo_map = {}
    for pair in args.repo_map:
        url, sep, path = pair.partition("=")
        if not sep or not url or not path:
            raise UsageError(f"--repo-map expects URL=PATH, got {pair[:60]!r}")
        repo_map[url.rstrip("/")] = str(Path(path).resolve())
    work_dir = Path(args.work_dir).resolve() if args.work_dir else Path(tempfile.mkdtemp(prefix="opsloop-render-"))
    postgres_url = args.postgres_url
    embedded = work_dir / "postgres" / "data" if postgres_url == "embedded" else None
    if embedded is not None:
        from opsloop.backend.embedded_db import start_embedded

        postgres_url = start_embedded(embedded)
    build_env = {}
    for pair in args.build_env:
        key, sep, value = pair.partition("=")
        if not sep or not _KEY.match(key):
            raise UsageError(f"--build-env expects KEY=VALUE, got {key[:40]!r}")
        build_env[key] = value
    build_venv = Path(args.build_venv).absolute() if args.build_venv else None
    if build_venv is not None and not (build_venv / "bin" / "python").exists():
        raise UsageError(f"--build-venv {args.build_venv}: not a virtualenv (no bin/python)")
    sys.stderr.write(f"deploys of reachable repositories run under {work_dir}\n")
    try:
        _serve_fake(args, token, work_dir, build_venv, repo_map, postgres_url, build_env)
    finally:
        if embedded is not None:
            from opsloop.backend.embedded_db import stop_embedded

            stop_embedded(embedded)
    return EXIT_OK


def _serve_fake(
    args: argparse.Namespace,
    token: str | None,
    work_dir: Path,
    build_venv: Path | None,
    repo_map: dict[str, str],
    postgres_url: str | None,
    build_env: dict[str, str],
) -> None:
    from .app import run_fake_render  # the server's packages, only when it runs

    run_fake_render(
        args.host,
        args.port,
        token or None,
        build_seconds=args.build_seconds,
        log_level="warning",
        rate_scale=args.rate_scale,
        work_dir=work_dir,
        build_venv=build_venv,
        repo_map=repo_map,
        postgres_url=postgres_url,
        validate_openapi=args.validate_openapi,
        build_env=build_env,
    )


def _check_token(token: str) -> None:
    """The local Render takes only a token opsloop itself accepts (infra/config.schema.json)."""
    import jsonschema

    from opsloop.backend.config import load_schema

    rule = load_schema()["properties"]["RENDER_API_TOKEN"]
    try:
        jsonschema.validate(token, {k: v for k, v in rule.items() if not k.startswith("x-") and k != "description"})
    except jsonschema.ValidationError as exc:
        raise UsageError(f"--token: opsloop would refuse this RENDER_API_TOKEN ({exc.message.replace(repr(token), 'the token')})") from None
