"""The Render monitor end to end: the fake Render as a process and two `opsloop serve`
instances watching three static sites every second (so "one instance acts per service" is
exercised), with a cap of one fix per service per hour.

- an empty build command: fixed, the redeploy goes live, the fix is a task with events;
- a fix that does not help: recorded as failed, never repeated, left to a person with a warn line;
- the cap: one fix went live, then (apps stopped) someone breaks the site again; after the
  restart the monitor still knows it already spent its attempt, and leaves it to a person.

Each test checks that its own sites' failed deploys were handled once, by one instance; no test
reads rows another test wrote.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from opsloop.backend.config import Settings
from opsloop.render.monitor import Change, diagnose, patch_of, plan_fix
from tests.support.processes import Proc, wait_for

from .conftest import static_site
from .procs import FakeProc, client, db, kinds, start_app, start_fake, tasks_of, wait_deploy_status

SITES = ("mon-empty", "mon-wrongpub", "mon-cap", "mon-tick-1", "mon-tick-2")
DEFAULT_BUILD = Settings.model_fields["RENDER_STATIC_SITE_BUILD_COMMAND"].default


@dataclass
class Cluster:
    database_url: str
    fake: FakeProc
    apps: list[Proc] = field(default_factory=list)

    def start(self) -> None:
        env = {
            "RENDER_MONITOR_SERVICES": ",".join(SITES),
            "RENDER_MONITOR_INTERVAL_MS": "1000",
            "OPSLOOP_RENDER_FIX_MAX": "1",
        }
        self.apps = [start_app(self.database_url, self.fake, f"render-monitor-app-{i}", **env) for i in (1, 2)]

    def stop(self) -> None:
        for app in self.apps:
            app.stop()

    def http(self) -> httpx.Client:
        return client(self.apps[0])


@pytest.fixture(scope="module")
def cluster(database_url: str) -> Iterator[Cluster]:
    fake = start_fake("render-monitor-fake", build_seconds=0.3, rate_scale=10)
    c = Cluster(database_url, fake)
    c.start()
    yield c
    c.stop()
    fake.stop()


def fix_rows(database_url: str, service_id: str) -> list[dict[str, Any]]:
    with db(database_url) as conn:
        return conn.execute("SELECT * FROM render_fixes WHERE service_id = %(s)s ORDER BY id", {"s": service_id}).fetchall()


def wait_rows(database_url: str, service_id: str, predicate, what: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    return wait_for(lambda: (rows := fix_rows(database_url, service_id)) and predicate(rows) and rows, timeout=timeout, interval=0.2, what=what)


def autofix_tasks(database_url: str, service_id: str) -> list[dict[str, Any]]:
    return tasks_of(database_url, "render.autofix", "payload->>'serviceId' = %(s)s", {"s": service_id})


def wait_logs(http: httpx.Client, params: dict[str, Any], predicate, what: str) -> list[dict[str, Any]]:
    return wait_for(
        lambda: (logs := http.get("/logs", params=params).json()["logs"]) and predicate(logs) and logs, timeout=10, interval=0.2, what=what
    )


def create_site(http: httpx.Client, name: str, **kw: Any) -> tuple[str, str]:
    resp = http.post("/render/services", json={"service": static_site(name, **kw)})
    assert resp.status_code == 201, resp.text
    return resp.json()["service"]["id"], resp.json()["deployId"]


def a_later_tick(http: httpx.Client, database_url: str, name: str) -> str:
    """A marker instead of a sleep: a new broken site the monitor must handle. Once its row exists, a
    whole tick that started after this call has run, and a tick looks at every watched site."""
    sid, _ = create_site(http, name, build="", publish=".web/build/client")
    wait_rows(database_url, sid, lambda r: len(r) >= 1, f"the monitor to handle {name}")
    return sid


def handled_once(database_url: str, *service_ids: str) -> dict[str, int]:
    """Each failed deploy of these services was handled once, by one instance: no deploy has two
    fix rows; returns the autofix tasks (n) and the distinct deploys they fix (d)."""
    ids = {"s": list(service_ids)}
    with db(database_url) as conn:
        dupes = conn.execute(
            "SELECT service_id, deploy_id, count(*) FROM render_fixes WHERE service_id = ANY(%(s)s) GROUP BY 1, 2 HAVING count(*) > 1", ids
        ).fetchall()
        tasks = conn.execute(
            "SELECT count(*) AS n, count(DISTINCT payload->>'deployId') AS d FROM tasks"
            " WHERE type = 'render.autofix' AND payload->>'serviceId' = ANY(%(s)s)",
            ids,
        ).fetchone()
    assert dupes == []
    return {"n": tasks["n"], "d": tasks["d"]}


def test_empty_build_command_is_fixed_and_the_redeploy_goes_live(cluster: Cluster) -> None:
    url = cluster.database_url
    with cluster.http() as http:
        sid, first = create_site(http, "mon-empty", build="", publish=".web/build/client")
        rows = wait_rows(url, sid, lambda r: r[0]["outcome"] == "fixed", "the fix of mon-empty to go live")
        assert len(rows) == 1 and rows[0]["deploy_id"] == first and rows[0]["problem"] == "empty_build_command,missing_publish_dir"
        assert rows[0]["fix"]["changes"] == [{"field": "buildCommand", "from": "", "to": DEFAULT_BUILD}]
        assert rows[0]["fix"]["skipped"] == ["publishPath is already '.web/build/client' (RENDER_STATIC_SITE_PUBLISH_PATH)"]
        redeploy = rows[0]["fix"]["redeployId"]
        latest = wait_deploy_status(http, sid)
        assert latest["id"] == redeploy and latest["status"] == "live"
        service = http.get("/render/services", params={"name": "mon-empty"}).json()["services"][0]
        assert service["serviceDetails"]["buildCommand"] == DEFAULT_BUILD

        (task,) = autofix_tasks(url, sid)
        assert task["id"] == rows[0]["task_id"] and task["status"] == "done" and task["source"] == "monitor"
        seen = kinds(url, task["id"])
        assert {"render.autofix.diagnosis", "render.autofix.patched", "render.autofix.redeploy", "render.autofix.outcome", "done"} <= set(seen)
        assert seen.index("render.autofix.outcome") < seen.index("done")  # the task waits for its redeploy
        # Log lines are written in the background, so the last one may land after the fix row.
        logs = wait_logs(
            http, {"q": "mon-empty", "limit": 50}, lambda ls: any("is live again" in line["message"] for line in ls), "the live-again line"
        )
        assert any("fixing buildCommand" in line["message"] for line in logs)
    assert handled_once(url, sid) == {"n": 1, "d": 1}


def test_a_fix_that_does_not_help_is_not_repeated(cluster: Cluster) -> None:
    url = cluster.database_url
    with cluster.http() as http:
        # `npm run build` produces dist/, never the configured .web/build/client: the fix cannot help.
        sid, first = create_site(http, "mon-wrongpub", build="npm run build", publish="public")
        rows = wait_rows(url, sid, lambda r: [x["outcome"] for x in r] == ["failed", "left_to_person"], "the failed fix, then the hand-over")
        assert rows[0]["deploy_id"] == first and rows[0]["fix"]["changes"][0]["field"] == "publishPath"
        assert rows[0]["fix"]["reverted"] is True
        assert rows[1]["deploy_id"] == rows[0]["fix"]["redeployId"]
        assert "was tried and did not help" in rows[1]["fix"]["reason"]
        (task,) = autofix_tasks(url, sid)
        assert task["status"] == "error" and "the fix did not help" in task["error"]["message"]  # not `done`
        seen = kinds(url, task["id"])
        assert seen.index("render.autofix.reverted") < seen.index("render.autofix.outcome")
        service = http.get("/render/services", params={"name": "mon-wrongpub"}).json()["services"][0]
        assert service["serviceDetails"]["publishPath"] == "public"  # the change that did not help is undone
        tick = a_later_tick(http, url, "mon-tick-1")
        assert [x["outcome"] for x in fix_rows(url, sid)] == ["failed", "left_to_person"]
        assert len(autofix_tasks(url, sid)) == 1
        assert wait_deploy_status(http, sid)["status"] == "build_failed"
        warns = wait_logs(
            http, {"level": "warn", "q": "mon-wrongpub", "limit": 50}, lambda ws: any("did not help" in w["message"] for w in ws), "the warn line"
        )
        assert sum("left to a person" in w["message"] for w in warns) == 1  # said once, not every tick
    assert handled_once(url, sid, tick) == {"n": 2, "d": 2}  # the site and its tick marker


def test_the_cap_holds_across_a_restart(cluster: Cluster) -> None:
    url = cluster.database_url
    with cluster.http() as http:
        sid, _ = create_site(http, "mon-cap", root_dir="frontend", build="npm run build", publish="dist")
        rows = wait_rows(url, sid, lambda r: r[0]["outcome"] == "fixed", "the root dir fix to go live")
        assert rows[0]["problem"] == "missing_root_dir" and rows[0]["fix"]["changes"][0] == {"field": "rootDir", "from": "frontend", "to": ""}

    cluster.stop()
    with cluster.fake.render() as render:  # someone breaks the site again while opsloop is down
        assert render.patch(f"/services/{sid}", json={"serviceDetails": {"buildCommand": ""}}).status_code == 200
        deploy = render.post(f"/services/{sid}/deploys", json={}).json()
        wait_for(lambda: render.get(f"/services/{sid}/deploys/{deploy['id']}").json()["status"] == "build_failed", timeout=10, what="the new failure")
    cluster.start()

    rows = wait_rows(url, sid, lambda r: len(r) == 2, "the monitor to look at the new failure after the restart")
    assert rows[1]["deploy_id"] == deploy["id"] and rows[1]["outcome"] == "left_to_person"
    assert "cap reached" in rows[1]["fix"]["reason"]
    with cluster.http() as http:
        tick = a_later_tick(http, url, "mon-tick-2")
    assert len(fix_rows(url, sid)) == 2 and len(autofix_tasks(url, sid)) == 1
    assert handled_once(url, sid, tick) == {"n": 2, "d": 2}  # the site and its tick marker


# ----- pure logic --------------------------------------------------------------------------------

CONFIGURED = {"RENDER_STATIC_SITE_ROOT_DIR": "", "RENDER_STATIC_SITE_BUILD_COMMAND": "make site", "RENDER_STATIC_SITE_PUBLISH_PATH": "out"}


def test_diagnose_recognises_renders_build_log_lines() -> None:
    assert diagnose(["==> Cloning", 'Service Root Directory "/opt/render/project/src/frontend" is missing.', "==> Build failed 😞"]) == [
        "missing_root_dir"
    ]
    assert diagnose(["==> Empty build command; skipping build", "==> Publish directory dist does not exist!"]) == [
        "empty_build_command",
        "missing_publish_dir",
    ]
    assert diagnose(["npm ERR! code ELIFECYCLE", "==> Build failed 😞"]) == []


def test_plan_fix_leaves_out_what_is_in_place_or_did_not_help() -> None:
    site = {"rootDir": "", "serviceDetails": {"buildCommand": "", "publishPath": "./out/"}}
    changes, skipped = plan_fix(site, ["empty_build_command", "missing_publish_dir"], CONFIGURED, [])
    assert changes == [Change("buildCommand", "", "make site")] and "publishPath is already" in skipped[0]
    assert patch_of(changes) == {"serviceDetails": {"buildCommand": "make site"}}
    tried = [{"changes": [{"field": "buildCommand", "from": "", "to": "make site"}]}]
    changes, skipped = plan_fix(site, ["empty_build_command"], CONFIGURED, tried)
    assert changes == [] and "did not help" in skipped[0]
    changes, _ = plan_fix({"rootDir": "web", "serviceDetails": {}}, ["missing_root_dir"], CONFIGURED, [])
    assert patch_of(changes) == {"rootDir": ""}


class StubWriter:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def log(self, level: str, message: str, data: Any = None, **ids: Any) -> None:
        self.lines.append((level, message))

    def info(self, message: str, data: Any = None, **ids: Any) -> None:
        self.log("info", message)

    def warn(self, message: str, data: Any = None, **ids: Any) -> None:
        self.log("warn", message)


class StubRender:
    """Just what the monitor reads: a static site whose latest build failed for another reason."""

    def __init__(self) -> None:
        self.client = self
        self.site = {"id": "srv-unrecognised1", "name": "odd-site", "type": "static_site", "rootDir": "", "serviceDetails": {}}

    async def list_services(self, name: Any = None, **_: Any) -> list[dict[str, Any]]:
        return [self.site]

    async def list_deploys(self, service_id: str, limit: int = 20, cursor: Any = None) -> tuple[list[dict[str, Any]], None]:
        return [{"id": "dep-unrecognised1", "status": "build_failed"}], None

    async def build_logs(self, service_id: str, deploy_id: str) -> list[str]:
        return ["==> Running build command 'npm run build'...", "npm ERR! code ELIFECYCLE", "==> Build failed 😞"]


async def test_an_unrecognised_failure_is_left_to_a_person_once(database_url: str) -> None:
    from types import SimpleNamespace

    from opsloop.backend import db as dbmod
    from opsloop.render.monitor import RenderMonitor

    pool = dbmod.make_pool(database_url, min_size=1, max_size=4)
    await pool.open(wait=True)
    try:
        writer = StubWriter()
        rt = SimpleNamespace(pool=pool, writer=writer, settings=Settings(RENDER_MONITOR_SERVICES="odd-site"))
        monitor = RenderMonitor(rt, StubRender())  # type: ignore[arg-type]
        assert await monitor.tick() == {"srv-unrecognised1": "left_to_person"}
        assert await monitor.tick() == {"srv-unrecognised1": "handled"}
    finally:
        await pool.close()
    (row,) = fix_rows(database_url, "srv-unrecognised1")
    assert row["outcome"] == "left_to_person" and row["problem"] == "unrecognised" and row["task_id"] is None
    assert row["fix"]["logTail"][-1] == "npm ERR! code ELIFECYCLE"
    warns = [m for level, m in writer.lines if level == "warn"]
    assert warns == [
        "render monitor: deploy dep-unrecognised1 of odd-site failed for a reason it does not recognise; left to a person (last log line: npm ERR! code ELIFECYCLE)"
    ]
