"""Argument parsing and dispatch for `opsloop`; each command lives in its own module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

Command = Callable[[argparse.Namespace], int]


def _config_doctor(args: argparse.Namespace) -> int:
    from opsloop.cli.doctor import run

    return run(args)


def _db_upgrade(args: argparse.Namespace) -> int:
    from opsloop.backend.db import upgrade_database

    upgrade_database()
    print("database schema is up to date")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from opsloop.cli.serve import run

    return run(args)


def _dev(args: argparse.Namespace) -> int:
    from opsloop.cli.dev import run

    return run(args)


def _seed(args: argparse.Namespace) -> int:
    from opsloop.cli.seed import run

    return run(args)


def _smoke(args: argparse.Namespace) -> int:
    from opsloop.cli.smoke import run

    return run(args)


def _bench(args: argparse.Namespace) -> int:
    from opsloop.cli.bench import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="opsloop", description="opsloop: tasks, agents, logs, live dashboard, Render automation.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    config = sub.add_parser("config", help="configuration checks").add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    doctor = config.add_parser("doctor", help="print every service's configuration report; exit 1 on error")
    doctor.add_argument("--service", help="only this service (app, echo-agent)")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.set_defaults(func=_config_doctor)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", metavar="SUBCOMMAND")
    db.add_parser("upgrade", help="apply migrations (alembic upgrade head)").set_defaults(func=_db_upgrade)

    serve = sub.add_parser("serve", help="run the API and task dispatcher without the dashboard (scale-out instances)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-dispatch", action="store_true", help="serve the API only; run no tasks here")
    serve.add_argument("--no-migrate", action="store_true", help="do not apply migrations at start")
    serve.add_argument("--dashboard", action="store_true", help="also serve the Reflex state socket and the built dashboard")
    serve.set_defaults(func=_serve)

    dev = sub.add_parser("dev", help="everything locally: database, migrations, app (:3000) and echo agent (:3001)")
    dev.add_argument("--port", type=int, default=3000)
    dev.add_argument("--agent-port", type=int, default=3001)
    dev.set_defaults(func=_dev)

    url_help = "opsloop base URL (default: OPSLOOP_URL, else http://127.0.0.1:3000); credentials: BASIC_AUTH_USER/PASS"
    seed = sub.add_parser("seed", help="queue the sample tasks and log batches of examples/, wait, print a summary")
    seed.add_argument("--count", type=int, help="tasks to queue in all, cycling through the task examples (default: one of each)")
    seed.add_argument("--skip-wait", action="store_true", help="queue and return; do not wait for the tasks to finish")
    seed.add_argument("--example", action="append", metavar="FILE", help="only this example file (repeatable; default: all of examples/)")
    seed.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the tasks to finish (default 120)")
    seed.add_argument("--url", help=url_help)
    seed.set_defaults(func=_seed)

    smoke = sub.add_parser("smoke", help="health, an echo task to done, its logs by trace id, the live stream; exit 0 or name the failed step")
    smoke.add_argument("--timeout", type=float, default=30.0, help="seconds allowed for the task and its logs (default 30)")
    smoke.add_argument("--url", help=url_help)
    smoke.set_defaults(func=_smoke)

    from opsloop.backend.plugins import installed as installed_plugins

    for plugin in installed_plugins():  # e.g. `opsloop render …` (argparse only: no configuration needed)
        plugin.add_commands(sub, url_help)

    bench = sub.add_parser("bench", help="run every benchmark under bench/; writes bench/results/latest.json and .md")
    bench.add_argument("--only", help="comma-separated subset: tasks,logs,live,dashboard")
    bench.add_argument("--timeout", type=float, default=600, help="seconds allowed per benchmark")
    bench.set_defaults(func=_bench)

    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Command | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        raise SystemExit(2)
    try:
        code = func(args)
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # one clear line, not a traceback
        from opsloop.cli.output import fail

        code = fail(exc)
    sys.exit(code)
