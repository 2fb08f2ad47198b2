"""`opsloop render …`: Render services, deploys, env and render.yaml from a terminal or a script.

Writes (`deploy`, `env`, `apply`) go through a running opsloop's REST API, so each is a task
with events like any change made from the dashboard. `status` and `list` read Render directly
when RENDER_API_TOKEN is set (they change nothing), else through opsloop too. `plan` asks
opsloop (it knows the account's owner and the repository). `plan` and `apply` run in this
process when RENDER_API_TOKEN is set and no opsloop answers, or with `--local` (the first
deploy: `render_local`). `fake` runs the local Render (a dev tool: `opsloop.devtools.render_fake`).

Exit codes: 0 success; 1 the operation failed (opsloop or Render said no, or could not be
reached); 2 usage or configuration error; 3 the operation worked but the outcome is bad
(`status --fail-on-error` found a failed deploy or a live service not answering its health
check, `deploy --wait` did not go live, `apply` stopped at a failure or `--wait` found a
service not live or not valid). Errors are one line on stderr, starting with `opsloop: error:`.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import re
import sys
import time
from collections.abc import Callable
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BAD_OUTCOME = 0, 1, 2, 3
FAILED = {"build_failed", "update_failed", "pre_deploy_failed"}
IN_PROGRESS = {"created", "queued", "build_in_progress", "update_in_progress", "pre_deploy_in_progress"}
TERMINAL = {"live", "deactivated", "canceled", *FAILED}
UNHEALTHY = "unhealthy"  # the latest deploy is live but the health check path does not answer
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_SECRET = re.compile(r"PASS|SECRET|TOKEN|PRIVATE|CREDENTIAL|DSN|DATABASE_URL|(^|_)KEY($|_)", re.IGNORECASE)


class UsageError(Exception):
    """Wrong arguments or missing configuration (exit 2)."""


def add_parser(sub: Any, url_help: str) -> None:
    """The `render` command group (called by `opsloop.cli.main.build_parser`)."""
    render = sub.add_parser(
        "render",
        help="Render services, deploys, env and render.yaml (writes are opsloop tasks)",
        description=__doc__.split("\n\n")[1] + "\n\n" + __doc__.split("\n\n")[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    group = render.add_subparsers(dest="render_command", metavar="SUBCOMMAND")

    def command(name: str, help: str, func: Callable[[argparse.Namespace], int], *, url: bool = True) -> argparse.ArgumentParser:
        p = group.add_parser(name, help=help, description=help)
        if url:
            p.add_argument("--url", help=url_help)
        p.set_defaults(func=functools.partial(run, func))  # each failure: one line and its exit code
        return p

    status = command("status", "services with their latest deploy status", _status)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--fail-on-error", action="store_true", help="exit 3 when a latest deploy failed")
    status.add_argument("--type", help="only these service types (comma-separated, e.g. static_site,web_service)")
    status.add_argument("--name", help="only these service names (comma-separated)")

    lst = command("list", "list services (id, type, name)", _list)
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    lst.add_argument("--type", help="only these service types (comma-separated)")
    lst.add_argument("--name", help="only these service names (comma-separated)")

    deploy = command("deploy", "deploy a service (a render.deploy task)", _deploy)
    deploy.add_argument("service_id", metavar="ID", help="service id (srv-…)")
    deploy.add_argument("--clear-cache", action="store_true", help="clear the build cache")
    deploy.add_argument("--wait", action="store_true", help="poll until the deploy ends; exit 3 unless it went live")
    deploy.add_argument("--timeout", type=float, default=1800.0, help="seconds --wait may take (default 1800)")
    deploy.add_argument("--interval", type=float, default=3.0, help="seconds between polls (default 3)")

    env = command("env", "set env vars on a service, merged unless --clear, then deploy it (a render.env task)", _env)
    env.add_argument("service_id", metavar="ID", help="service id (srv-…)")
    env.add_argument("pairs", metavar="KEY=VALUE", nargs="+", help="variables to set")
    env.add_argument("--clear", action="store_true", help="replace all variables by these (Render's PUT semantics)")
    env.add_argument("--no-deploy", action="store_true", help="change the variables only; they take effect on the next deploy")
    env.add_argument("--json", action="store_true", help="machine-readable output")

    env_file_help = "env file with values of render.yaml's `sync: false` keys (wins over the environment; never printed)"
    plan = command("plan", "what `apply` would do: render.yaml against the account", _plan)
    plan.add_argument("--path", help="Blueprint file inside the repository (default render.yaml)")
    plan.add_argument("--env-file", help=env_file_help)
    plan.add_argument("--json", action="store_true", help="machine-readable output")

    apply = command("apply", "carry render.yaml out (a render.apply task); asks first unless --yes", _apply)
    apply.add_argument("--path", help="Blueprint file inside the repository (default render.yaml)")
    apply.add_argument("--env-file", help=env_file_help)
    apply.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    apply.add_argument(
        "--wait", action="store_true", help="wait for the deploys, then check every web service's health and /config/validate (exit 3 otherwise)"
    )
    apply.add_argument("--timeout", type=float, default=3600.0, help="seconds the apply may take (default 3600)")
    apply.add_argument("--json", action="store_true", help="machine-readable output")
    for p in (plan, apply):
        p.add_argument("--local", action="store_true", help="run in this process, not in a running opsloop (default when none answers)")

    render.set_defaults(func=lambda _args: _usage(render))


def subcommands(sub: Any) -> argparse._SubParsersAction[argparse.ArgumentParser] | None:
    """The `render` group's subcommands (None when the group is absent), for commands that other
    packages add to it: `render fake` comes from the dev tools, which the plugin never imports."""
    render = sub.choices.get("render")
    if render is None:
        return None
    return next(a for a in render._actions if isinstance(a, argparse._SubParsersAction))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def run(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run one subcommand: every failure becomes one line and its exit code."""
    from opsloop.cli.client import ClientError
    from opsloop.cli.output import redact

    try:
        return func(args)
    except UsageError as exc:
        sys.stderr.write(f"opsloop: error: {redact(str(exc))}\n")
        return EXIT_USAGE
    except ClientError as exc:
        sys.stderr.write(f"opsloop: error: {str(exc).splitlines()[0]}\n")
        return EXIT_USAGE if exc.status == 401 else EXIT_FAILED


# ----- plumbing -------------------------------------------------------------------------------


def _client(args: argparse.Namespace, timeout: float = 120.0) -> Any:
    import httpx

    from opsloop.cli.client import Client, ClientError

    try:
        client = Client.from_args(args)
    except ClientError as exc:
        raise UsageError(str(exc)) from None
    client.http.timeout = httpx.Timeout(timeout, connect=5.0)
    client.http.headers["X-Opsloop-Source"] = "cli"
    return client


def _settings() -> Any:
    from opsloop.backend.config import get_settings

    return get_settings()


def _mask(key: str, value: str) -> str:
    return "***" if _SECRET.search(key) else value


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def _age(ts: str | None) -> str:
    return (ts or "")[:19].replace("T", " ")


# ----- reads: Render directly when a token is set, else through opsloop ----------------------------


def _read_services(args: argparse.Namespace, with_latest: bool) -> list[dict[str, Any]]:
    settings = _settings()
    if settings.RENDER_API_TOKEN:
        return asyncio.run(_direct_services(settings, args.type, args.name, with_latest))
    with _client(args, timeout=60.0) as client:
        services = client.get("/render/services", type=args.type, name=args.name)["services"]
        if with_latest:
            for s in services:
                deploys = client.get(f"/render/services/{s['id']}/deploys", limit=1)["deploys"]
                s["_latest"] = deploys[0] if deploys else None
        return services


async def _direct_services(settings: Any, type_: str | None, name: str | None, with_latest: bool) -> list[dict[str, Any]]:
    from opsloop.cli.client import ClientError
    from opsloop.render.client import RenderAPIError, RenderClient

    def csv(value: str | None) -> list[str] | None:
        return [v.strip() for v in value.split(",") if v.strip()] or None if value else None

    try:
        async with RenderClient(settings.RENDER_API_BASE_URL, settings.RENDER_API_TOKEN, max_total_sleep=20.0) as client:
            services = await client.list_services(type=csv(type_), name=csv(name))
            if with_latest:
                sem = asyncio.Semaphore(8)

                async def latest(s: dict[str, Any]) -> None:
                    async with sem:
                        deploys, _ = await client.list_deploys(s["id"], limit=1)
                    s["_latest"] = deploys[0] if deploys else None

                await asyncio.gather(*(latest(s) for s in services))
            return services
    except RenderAPIError as exc:
        raise ClientError(f"Render at {settings.RENDER_API_BASE_URL}: {exc}") from None


def _status(args: argparse.Namespace) -> int:
    services = _read_services(args, with_latest=True)
    rows = []
    for s in services:
        latest = s.pop("_latest", None) or {}
        rows.append(
            {
                "id": s["id"],
                "name": s.get("name"),
                "type": s.get("type"),
                "suspended": s.get("suspended"),
                "deployId": latest.get("id"),
                "status": latest.get("status") or "none",
                "finishedAt": latest.get("finishedAt"),
                "updatedAt": latest.get("updatedAt"),
            }
        )
    _check_health(rows, {s["id"]: s for s in services})
    failed = [r for r in rows if r["status"] in FAILED or r["status"] == UNHEALTHY]
    if args.json:
        _print_json({"services": rows, "failed": len(failed)})
    else:
        if not rows:
            print("no services")
        width = max([len(str(r["name"])) for r in rows] + [4])
        for r in rows:
            print(f"{r['status']:<22} {r['name']!s:<{width}}  {r['id']}  {r['type']}  {_age(r['updatedAt'])}")
        if failed:
            print(f"{len(failed)} of {len(rows)} service(s) failed their latest deploy or do not answer", file=sys.stderr)
    return EXIT_BAD_OUTCOME if (args.fail_on_error and failed) else EXIT_OK


def _check_health(rows: list[dict[str, Any]], services: dict[str, dict[str, Any]]) -> None:
    """A live web service must answer its health check path, or it is shown as `unhealthy`."""
    import httpx

    for row in rows:
        details = services[row["id"]].get("serviceDetails") or {}
        path, url = details.get("healthCheckPath"), str(details.get("url") or "").rstrip("/")
        if row["status"] != "live" or row["type"] != "web_service" or not path or not url:
            continue
        try:
            answered = httpx.get(url + path, timeout=5.0, follow_redirects=True).status_code < 400
        except httpx.HTTPError:
            answered = False
        row["health"] = "ok" if answered else "not answering"
        if not answered:
            row["status"] = UNHEALTHY


def _list(args: argparse.Namespace) -> int:
    services = _read_services(args, with_latest=False)
    if args.json:
        _print_json({"services": services})
        return EXIT_OK
    for s in services:
        print(f"{s['id']}  {s.get('type')!s:<18} {s.get('name')}")
    if not services:
        print("no services")
    return EXIT_OK


# ----- writes: through opsloop (tasks) ---------------------------------------------------------


def _deploy(args: argparse.Namespace) -> int:
    with _client(args) as client:
        deploy = client.post(f"/render/deploy/{args.service_id}", {"clearCache": args.clear_cache})["deploy"] or {}
        deploy_id, status = deploy.get("id"), deploy.get("status")
        print(f"deploy {deploy_id} of {args.service_id}: {status}")
        if not args.wait:
            return EXIT_OK
        status = _wait_deploy(client, args, deploy_id, status)
    return EXIT_OK if status == "live" else EXIT_BAD_OUTCOME


def _wait_deploy(client: Any, args: argparse.Namespace, deploy_id: str | None, status: str | None) -> str | None:
    from opsloop.cli.client import ClientError

    started = time.monotonic()
    deadline = started + args.timeout
    while status not in TERMINAL:
        if time.monotonic() > deadline:
            raise ClientError(f"deploy {deploy_id} still {status} after {args.timeout:g}s")
        time.sleep(max(0.05, args.interval))
        deploys = client.get(f"/render/services/{args.service_id}/deploys", limit=20)["deploys"]
        match = next((d for d in deploys if d.get("id") == deploy_id), None) if deploy_id else (deploys[0] if deploys else None)
        if match is None:
            raise ClientError(f"deploy {deploy_id} is no longer among the service's 20 latest deploys")
        deploy_id = match["id"]
        if match.get("status") != status:
            status = match.get("status")
            print(f"  {time.monotonic() - started:6.1f}s  {status}", file=sys.stderr, flush=True)
    print(f"deploy {deploy_id}: {status}")
    return status


def _env(args: argparse.Namespace) -> int:
    env: dict[str, str] = {}
    for pair in args.pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(f"expected KEY=VALUE, got {key[:40]!r} (no '=')")
        if not _KEY.match(key):
            raise UsageError(f"{key[:40]!r} is not a valid variable name: letters, digits, _ . - and not starting with a digit")
        env[key] = value
    with _client(args) as client:
        body = {"env": env, "clear": args.clear, "deploy": not args.no_deploy}
        out = client.request("PATCH", f"/render/services/{args.service_id}/env", json=body).json()
    result, deploy = out["env"], out.get("deploy")
    if args.json:
        _print_json(out)
    else:
        for key in sorted(result):
            print(f"{key}={_mask(key, result[key])}")
        how = "replaced" if args.clear else "merged"
        then = f"; deploy {deploy.get('id')} started" if deploy else ("; nothing changed" if out.get("changed") is False else "; not deployed")
        print(f"{len(env)} set, {len(result)} in all ({how}){then}", file=sys.stderr)
    return EXIT_OK


def _raw_post(client: Any, path: str, body: Any) -> Any:
    """POST keeping the answer's body even when it is an error (apply reports what it did)."""
    import httpx

    from opsloop.cli.client import ClientError

    try:
        resp = client.http.post(path, json=body)
    except httpx.ConnectError:
        raise ClientError(f"cannot reach opsloop at {client.url} (is it running? start it with `opsloop dev`, or pass --url)") from None
    except httpx.TimeoutException:
        raise ClientError(f"POST {client.url}{path}: no answer in time; the task may still be running (GET /tasks?type=render.apply)") from None
    except httpx.HTTPError as exc:
        raise ClientError(f"POST {client.url}{path}: {type(exc).__name__}: {exc}") from None
    if resp.status_code == 401:
        raise ClientError(f"POST {client.url}{path} → 401 Unauthorized: check BASIC_AUTH_USER / BASIC_AUTH_PASS", 401)
    return resp


def _print_plan(plan: dict[str, Any]) -> None:
    marks = {"create": "+", "update": "~", "noop": "="}
    for s in [*plan.get("resources", []), *plan.get("services", [])]:
        verb = {"create": "create", "update": "update", "noop": "no change"}.get(s["action"], s["action"])
        kind = "" if s.get("kind", "service") == "service" else f"{s['kind']} "
        print(f"{marks.get(s['action'], '?')} {kind}{s['name']} ({s['type']}): {verb}")
        for c in s.get("changes", []):
            if s["action"] == "create" or c.get("old") is None:
                print(f"    {c['field']}: {json.dumps(c.get('new'))}")
            else:
                print(f"    {c['field']}: {json.dumps(c.get('old'))} -> {json.dumps(c.get('new'))}")
        for w in s.get("warnings", []):
            print(f"    ! {w}")
    for note in [*plan.get("skipped", []), *plan.get("warnings", [])]:
        print(f"  note: {note}")
    for key in plan.get("missing", []):
        print(f"  missing: {key} (sync: false; give it in the environment or --env-file)")
    for why in plan.get("blocked", []):
        print(f"  blocked: {why}")
    print("nothing to do: Render matches render.yaml" if plan.get("noop") else "")


def _secrets(args: argparse.Namespace) -> dict[str, str]:
    """Values of render.yaml's `sync: false` keys: the environment, then --env-file (which wins)."""
    import os

    from opsloop.render.agent import PayloadError, blueprint_path
    from opsloop.render.blueprint import BlueprintError, load_blueprint

    try:
        keys = {key for _, key in load_blueprint(blueprint_path(args.path), validate=False).secret_keys()}
    except (PayloadError, BlueprintError, KeyError, TypeError, AttributeError):
        return {}  # opsloop says what is wrong with the file
    values = {k: v for k, v in os.environ.items() if k in keys and v}
    if args.env_file:
        from dotenv import dotenv_values

        try:
            with open(args.env_file, encoding="utf-8") as handle:
                given = dotenv_values(stream=handle)
        except OSError as exc:
            raise UsageError(f"--env-file {args.env_file}: {exc.strerror or exc}") from None
        values |= {k: v for k, v in given.items() if k in keys and v}
    return values


def _answer(client: Any, body: dict[str, Any], args: argparse.Namespace, what: str) -> dict[str, Any]:
    """POST /render/blueprint/apply; an error answer keeps its details (problems, what was done)."""
    from opsloop.cli.client import ClientError

    resp = _raw_post(client, "/render/blueprint/apply", body)
    data = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
    if resp.status_code < 400 or "result" in data:
        return {**data, "_status": resp.status_code}
    if args.json:
        _print_json(data)
    for problem in data.get("problems") or []:
        sys.stderr.write(f"  - {problem}\n")
    raise ClientError(f"{what}: {resp.status_code}: {data.get('error') or resp.text[:200]}", resp.status_code)


def _here(args: argparse.Namespace) -> bool:
    """Run plan/apply in this process: --local, or a Render token and no opsloop to ask (render_local)."""
    from opsloop.render import cli_local as render_local

    settings = _settings()
    if args.local:
        if not settings.RENDER_API_TOKEN:
            raise UsageError("--local needs RENDER_API_TOKEN (the Render API key) in the environment")
        return True
    if not settings.RENDER_API_TOKEN or args.url:
        return False
    if not (settings.BASIC_AUTH_USER and settings.BASIC_AUTH_PASS) or not render_local.reachable(settings.OPSLOOP_URL or "http://127.0.0.1:3000"):
        sys.stderr.write("no opsloop to ask: running it in this process (the render.apply task is recorded in its database)\n")
        return True
    return False


def _checked(data: dict[str, Any], status: int, args: argparse.Namespace, what: str) -> dict[str, Any]:
    """An answer as `_answer` returns it: an error without a result raises, with its problems shown."""
    from opsloop.cli.client import ClientError

    if status < 400 or "result" in data:
        return {**data, "_status": status}
    if args.json:
        _print_json(data)
    for problem in data.get("problems") or []:
        sys.stderr.write(f"  - {problem}\n")
    raise ClientError(f"{what}: {status}: {data.get('error')}", status)


def _plan(args: argparse.Namespace) -> int:
    body = {"dryRun": True, "env": _secrets(args), **({"path": args.path} if args.path else {})}
    if _here(args):
        from opsloop.render import cli_local as render_local

        plan = _checked(*render_local.run(args.path, body["env"], dry_run=True, wait=False), args, "plan")["plan"]
    else:
        with _client(args) as client:
            plan = _answer(client, body, args, "plan")["plan"]
    if args.json:
        _print_json(plan)
    else:
        _print_plan(plan)
    return EXIT_OK


def _confirmed(plan: dict[str, Any], args: argparse.Namespace) -> bool:
    """Show the plan and ask (a no-op needs no answer unless --wait still has checks to make)."""
    _print_plan(plan)
    if plan.get("noop") and not args.wait:
        return False
    if not sys.stdin.isatty():
        raise UsageError("refusing to apply without confirmation: stdin is not a terminal (pass --yes)")
    if input("Apply these changes to Render? [y/N] ").strip().lower() not in ("y", "yes"):
        print("not applied")
        return False
    return True


def _apply(args: argparse.Namespace) -> int:
    secrets = _secrets(args)
    body: dict[str, Any] = {"env": secrets, **({"path": args.path} if args.path else {})}
    if _here(args):
        from opsloop.render import cli_local as render_local

        if not args.yes and not sys.stdin.isatty():
            raise UsageError("refusing to apply without confirmation: stdin is not a terminal (pass --yes)")

        async def ask(plan: dict[str, Any]) -> bool:
            return await asyncio.to_thread(_confirmed, plan, args)

        data = _checked(*render_local.run(args.path, secrets, dry_run=False, wait=args.wait, confirm=None if args.yes else ask), args, "apply")
        if data.get("notApplied"):
            return EXIT_OK
    else:
        with _client(args, timeout=args.timeout + 60) as client:
            if not args.yes and not _confirmed(_answer(client, {"dryRun": True, **body}, args, "plan")["plan"], args):
                return EXIT_OK
            data = _answer(client, {"dryRun": False, "wait": args.wait, **body}, args, "apply")
    status = data.pop("_status")
    result = data.get("result") or {}
    if args.json:
        _print_json(data)
    else:
        for step in result.get("steps", []):
            mark = "ok " if step.get("ok") else "FAILED"
            print(f"{mark} {step['service']}: {step['action']} {step.get('detail', '')}".rstrip())
        for name in result.get("notAttempted", []):
            print(f"--  {name}: not attempted")
        if not result.get("steps"):
            print("nothing to do: Render matches render.yaml")
        plan = data.get("plan") or {}
        for s in [*plan.get("resources", []), *plan.get("services", [])]:
            for warning in s.get("warnings", []):
                print(f"  ! {s['name']}: {warning}")  # what apply left alone, said again after it
        for note in plan.get("skipped", []):
            print(f"  note: {note}")
    if status >= 400 or not data.get("ok", True):
        bad = sorted({s["service"] for s in result.get("steps", []) if not s.get("ok")})
        where = f" ({', '.join(bad)})" if bad else ""
        sys.stderr.write(f"opsloop: error: {data.get('error') or 'apply stopped at a failure'}{where}\n")
        return EXIT_BAD_OUTCOME
    return EXIT_OK
