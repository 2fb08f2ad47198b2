"""The local Render's runtime: a deploy of a service whose repository it can reach really runs.

Why: a local Render that only simulates builds reports services ``live`` that would never
start. For a service whose repository is a local git directory or ``file://`` URL (or a URL
mapped to one), a deploy:

1. checks the branch's commit out into a work folder (one per service and commit),
2. runs ``buildCommand`` (``build_in_progress``; skipped when this service already built this
   commit with the same command: the build cache), then ``preDeployCommand``
   (``pre_deploy_in_progress``), each with ``bash -c`` in the root dir, logging every output line,
3. runs ``startCommand`` with the env Render gives (the service's and its linked groups'
   variables, ``PORT``, ``RENDER``, ``RENDER_SERVICE_ID``/``_NAME``/``_TYPE``,
   ``RENDER_EXTERNAL_URL``/``_HOSTNAME``, ``RENDER_INTERNAL_HOSTNAME``, ``RENDER_GIT_*``…) and
   polls ``healthCheckPath`` (``update_in_progress``): ``live`` only once it answers below 400;
   a process that exits or never answers is ``update_failed``. The previous deploy's process is
   stopped only then, as Render does.

Static sites run their build command and publish ``staticPublishPath``, served over HTTP.

Addresses: each service keeps one port for its life (a small TCP relay) in front of whichever
process is live, so addresses never change between deploys. Render's private network resolves
``<slug>:<port>``; locally there is no such DNS, so values of the form ``<slug>:<its PORT or
10000>`` in a process's env are rewritten to ``127.0.0.1:<the service's port>`` — a
``fromService hostport`` reaches where the service really listens.

Python builds: with ``build_venv`` (a virtualenv, e.g. this checkout's ``.venv``), commands run in
a fresh virtualenv that sees that one's packages (a ``.pth`` file) and console scripts, so
``pip install -r requirements.txt`` finds every requirement satisfied instead of downloading
them, and installs anything missing into the fresh one, never into ``build_venv``.
``RENDER_API_BASE_URL`` points deployed services at this local Render unless they set it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
import shutil
import signal
import socket
import sys
import sysconfig
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

DEFAULT_PORT = "10000"
HEALTH_TIMEOUT_S = 120.0
KEEP_ENV = ("HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")
_KIND = {"static_site": "static", "web_service": "web", "private_service": "pserv", "background_worker": "worker", "cron_job": "cron"}

Status = Callable[[str], None]
Log = Callable[[str], None]


class DeployFailed(Exception):
    """A deploy ends with ``status`` (build_failed, pre_deploy_failed, update_failed)."""

    def __init__(self, status: str, line: str) -> None:
        super().__init__(line)
        self.status = status
        self.line = line


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Relay:
    """A stable TCP port forwarding to the live process's port (None: refuse connections)."""

    port: int
    target: int | None = None
    server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.target is None:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(Exception):
            writer.close()


@dataclass
class Running:
    """A started process of one deploy."""

    process: asyncio.subprocess.Process
    port: int
    pump: asyncio.Task[None] | None = None

    async def stop(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                await self.process.wait()
        if self.pump is not None:
            self.pump.cancel()


@dataclass
class Runner:
    """Builds and runs deploys (module docstring). One per local Render, on its event loop."""

    work_dir: Path
    build_venv: Path | None = None
    repo_map: Mapping[str, str] = field(default_factory=dict)
    api_url: str = ""
    health_timeout: float = HEALTH_TIMEOUT_S
    build_env: Mapping[str, str] = field(default_factory=dict)  # tools this machine's builds need (Render's image has its own)
    relays: dict[str, Relay] = field(default_factory=dict)
    live: dict[str, Running] = field(default_factory=dict)  # service id -> live process
    _venv_bin: Path | None = None
    _venv_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    # ----- what can run -------------------------------------------------------------------

    def source(self, repo: str | None) -> str | None:
        """A git location this machine can clone for ``repo``, or None (the build is simulated)."""
        if not repo:
            return None
        mapped = self.repo_map.get(repo.rstrip("/")) or self.repo_map.get(repo)
        if mapped:
            return mapped
        if repo.startswith("file://"):
            path = urlsplit(repo).path
        elif repo.startswith("/"):
            path = repo
        else:
            return None
        return path if (Path(path) / ".git").exists() or (Path(path) / "HEAD").exists() else None

    async def relay(self, service_id: str) -> Relay:
        """The service's stable port (allocated on first use)."""
        relay = self.relays.get(service_id)
        if relay is None:
            relay = self.relays[service_id] = Relay(free_port())
            await relay.start()
        return relay

    def url(self, service_id: str) -> str | None:
        relay = self.relays.get(service_id)
        return f"http://127.0.0.1:{relay.port}" if relay else None

    # ----- a deploy -----------------------------------------------------------------------

    async def resolve_commit(self, source: str, branch: str) -> dict[str, str]:
        """The branch's commit (``HEAD`` also works: a detached local checkout has no branch)."""
        refs: dict[str, str] = {}
        for line in (await _capture(["git", "ls-remote", source])).splitlines():
            if "\t" in line:
                sha_of, name = line.split("\t", 1)
                refs[name] = sha_of
        sha = refs.get(f"refs/heads/{branch}") or refs.get(branch) or ""
        if not re.fullmatch(r"[0-9a-f]{40}", sha):
            raise DeployFailed("build_failed", f"==> Branch {branch} not found in {source}")
        return {"id": sha}

    async def deploy(
        self,
        service: Mapping[str, Any],
        env: Mapping[str, str],
        peers: Mapping[str, tuple[str, str]],
        commit: dict[str, Any],
        status: Status,
        log: Log,
    ) -> None:
        """Run one deploy to ``live`` or raise DeployFailed. ``peers``: slug -> (declared port, service id)."""
        sid, kind = str(service["id"]), str(service["type"])
        source = self.source(service.get("repo"))
        assert source is not None
        checkout = self.work_dir / "services" / str(service["slug"]) / commit["id"]
        log(f"==> Cloning from {service.get('repo')}")
        log(f"==> Checking out commit {commit['id']} in branch {service.get('branch', 'main')}")
        await self._checkout(source, commit["id"], checkout)
        root = checkout / str(service.get("rootDir") or "").strip("/")
        if not root.is_dir():
            raise DeployFailed("build_failed", f'Service Root Directory "/opt/render/project/src/{service.get("rootDir")}" is missing.')
        details = service.get("serviceDetails") or {}
        specific = details.get("envSpecificDetails") or {}
        build = str(details.get("buildCommand") if kind == "static_site" else specific.get("buildCommand") or "")
        relay = await self.relay(sid)
        port = free_port()
        process_env = await self._env(service, env, peers, commit, port, relay)
        await self._build(build, root, process_env, log, static=kind == "static_site")
        if kind == "static_site":
            publish = root / str(details.get("publishPath") or "public").strip("/")
            if not publish.is_dir():
                raise DeployFailed("build_failed", f"==> Publish directory {details.get('publishPath')} does not exist!")
            log("==> Uploading build...")
            command = f"{shlex_quote(sys.executable)} -m http.server {port} --bind 127.0.0.1 --directory {shlex_quote(str(publish))}"
            await self._start(sid, command, root, process_env, port, "/", log, status)
            return
        pre = str(specific.get("preDeployCommand") or "")
        if pre:
            status("pre_deploy_in_progress")
            log(f"==> Running pre-deploy command '{pre}'...")
            if await self._run(pre, root, process_env, log) != 0:
                raise DeployFailed("pre_deploy_failed", "==> Pre-deploy has failed")
        status("update_in_progress")
        log("==> Deploying...")
        start = str(specific.get("startCommand") or "")
        if kind == "cron_job":
            return  # a cron job runs on its schedule, not at deploy
        health = str(details.get("healthCheckPath") or "") if kind == "web_service" else ""
        log(f"==> Running '{start}'")
        await self._start(sid, start, root, process_env, port, health or None, log, status)

    async def _checkout(self, source: str, sha: str, dest: Path) -> None:
        if (dest / ".git").exists():
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        for args in (["git", "clone", "--quiet", "--no-checkout", source, str(partial)], ["git", "-C", str(partial), "checkout", "--quiet", sha]):
            proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            out, _ = await proc.communicate()
            if proc.returncode != 0:
                raise DeployFailed("build_failed", f"==> Checkout failed: {out.decode(errors='replace').strip()[-300:]}")
        partial.rename(dest)

    async def _build(self, command: str, root: Path, env: dict[str, str], log: Log, *, static: bool) -> None:
        if not command.strip():
            if static:
                log("==> Empty build command; skipping build")
            return
        marker = root / f".render-build-{hashlib.sha256(command.encode()).hexdigest()[:16]}"
        if marker.exists():
            log(f"==> Using the build cache of this commit for '{command}'")
            return
        log(f"==> Running build command '{command}'...")
        if await self._run(command, root, env, log) != 0:
            raise DeployFailed("build_failed", "==> Build failed 😞")
        marker.touch()
        log("==> Build successful 🎉")

    async def _run(self, command: str, cwd: Path, env: dict[str, str], log: Log) -> int:
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", command, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True
        )
        try:
            assert proc.stdout is not None
            async for raw in proc.stdout:
                log(raw.decode(errors="replace").rstrip())
            return await proc.wait()
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            raise

    async def _start(self, sid: str, command: str, cwd: Path, env: dict[str, str], port: int, health: str | None, log: Log, status: Status) -> None:
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", command, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True
        )
        running = Running(proc, port)
        running.pump = asyncio.get_running_loop().create_task(self._pump(proc, log))
        try:
            await self._until_healthy(running, health)
        except BaseException:
            await running.stop()
            raise
        previous = self.live.get(sid)
        self.live[sid] = running
        (await self.relay(sid)).target = port
        if previous is not None:
            await previous.stop()

    async def _pump(self, proc: asyncio.subprocess.Process, log: Log) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            log(raw.decode(errors="replace").rstrip())

    async def _until_healthy(self, running: Running, health: str | None) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.health_timeout
        async with httpx.AsyncClient(timeout=2.0) as http:
            while True:
                if running.process.returncode is not None:
                    raise DeployFailed("update_failed", f"==> Exited with status {running.process.returncode}")
                if health is None:
                    await asyncio.sleep(1.0)  # no health check: still running a moment later is as good as it gets
                    if running.process.returncode is None:
                        return
                    continue
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"http://127.0.0.1:{running.port}{health}")).status_code < 400:
                        return
                if loop.time() > deadline:
                    raise DeployFailed("update_failed", f"==> Timed out: {health} did not answer in {self.health_timeout:g}s")
                await asyncio.sleep(0.2)

    # ----- the env Render gives -------------------------------------------------------------

    async def _env(
        self,
        service: Mapping[str, Any],
        env: Mapping[str, str],
        peers: Mapping[str, tuple[str, str]],
        commit: Mapping[str, Any],
        port: int,
        relay: Relay,
    ) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if k in KEEP_ENV}
        bin_dir = await self._bin()
        path = f"{bin_dir}:/usr/local/bin:/usr/bin:/bin" if bin_dir else os.environ.get("PATH", "/usr/bin:/bin")
        extra = {"PATH": path, "PYTHONUNBUFFERED": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        if bin_dir:
            extra["VIRTUAL_ENV"] = str(bin_dir.parent)
        own = {k: await self._private(v, peers) for k, v in env.items()}
        render = {
            "RENDER": "true",
            "IS_PULL_REQUEST": "false",
            "PORT": str(port),
            "RENDER_SERVICE_ID": str(service["id"]),
            "RENDER_SERVICE_NAME": str(service["name"]),
            "RENDER_SERVICE_TYPE": _KIND[str(service["type"])],
            "RENDER_EXTERNAL_URL": f"http://127.0.0.1:{relay.port}",
            "RENDER_EXTERNAL_HOSTNAME": f"127.0.0.1:{relay.port}",
            "RENDER_INTERNAL_HOSTNAME": str(service["slug"]),
            "RENDER_INSTANCE_ID": f"{service['id']}-{secrets.token_hex(4)}",
            "RENDER_GIT_COMMIT": str(commit.get("id", "")),
            "RENDER_GIT_BRANCH": str(service.get("branch") or ""),
            "RENDER_GIT_REPO_SLUG": str(service.get("repo") or "").rstrip("/").split("/", 3)[-1],
        }
        local = {"RENDER_API_BASE_URL": self.api_url} if self.api_url and "RENDER_API_BASE_URL" not in own else {}
        return {**base, **extra, **self.build_env, **local, **own, **render}

    async def _private(self, value: str, peers: Mapping[str, tuple[str, str]]) -> str:
        """Render's private network, locally: ``<slug>:<declared port>`` -> the service's relay."""
        for slug, (declared, sid) in peers.items():
            pattern = re.compile(rf"(?<![A-Za-z0-9.-]){re.escape(slug)}:{re.escape(declared)}(?![0-9])")
            if pattern.search(value):
                value = pattern.sub(f"127.0.0.1:{(await self.relay(sid)).port}", value)
        return value

    async def _bin(self) -> Path | None:
        """The fresh virtualenv's bin folder (module docstring), made once."""
        if self.build_venv is None:
            return None
        async with self._venv_lock:  # deploys start together: one makes it, the others wait
            if self._venv_bin is None:
                self._venv_bin = await asyncio.shield(asyncio.to_thread(_reuse_venv, self.build_venv, self.work_dir / "venv"))
        return self._venv_bin

    # ----- lifecycle ------------------------------------------------------------------------

    async def forget(self, service_id: str) -> None:
        running = self.live.pop(service_id, None)
        if running is not None:
            await running.stop()
        relay = self.relays.pop(service_id, None)
        if relay is not None:
            await relay.close()

    async def close(self) -> None:
        for sid in list({*self.live, *self.relays}):
            await self.forget(sid)


def _reuse_venv(source: Path, dest: Path) -> Path:
    """A virtualenv seeing ``source``'s packages and console scripts (``--without-pip``: seconds, not minutes)."""
    import subprocess

    if (dest / "bin" / "python").exists():
        return dest / "bin"
    final, dest = dest, dest.with_name(dest.name + ".partial")  # made aside, then renamed: never half there
    shutil.rmtree(dest, ignore_errors=True)
    bin_dir = dest / "bin"
    python = source / "bin" / "python"
    subprocess.run([str(python if python.exists() else sys.executable), "-m", "venv", "--without-pip", str(dest)], check=True, capture_output=True)
    purelib = (
        subprocess.run(
            [str(python if python.exists() else sys.executable), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        or sysconfig.get_paths()["purelib"]
    )
    site = next((dest / "lib").glob("python3*/site-packages"))
    (site / "reuse-build-venv.pth").write_text(purelib + "\n")
    ours = (source / "bin").resolve()
    for script in (source / "bin").iterdir():
        target = bin_dir / script.name
        if target.exists() or not script.is_file():
            continue
        text = script.read_bytes()
        first = text.split(b"\n", 1)[0]
        if first.startswith(b"#!") and (str(ours).encode() in first or str(source / "bin").encode() in first):  # a console script of it
            target.write_bytes(b"#!" + str(final / "bin" / "python").encode() + text[text.index(b"\n") :])
            target.chmod(0o755)
    dest.rename(final)
    return final / "bin"


async def _capture(args: list[str]) -> str:
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    out, _ = await proc.communicate()
    return out.decode(errors="replace")


def shlex_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)
