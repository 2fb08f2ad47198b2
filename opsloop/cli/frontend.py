"""Building and serving the Reflex dashboard offline (see ../shared/REFLEX.md).

Reflex's `run --env prod` recompiles and rebuilds the frontend on every start. We build once
with `reflex export --frontend-only` (bun from the npm registry, nothing else from the network),
stamp the build with a hash of its inputs, and serve the built files and the backend on one port
through Reflex's ASGI factory: later starts take about a second.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from opsloop.backend.config import PROJECT_ROOT

BUN_VERSION = "1.4.4"
TOOLS = PROJECT_ROOT / ".tools"
BUN = TOOLS / "node_modules" / ".bin" / "bun"
BUILD_DIR = PROJECT_ROOT / ".web" / "build" / "client"
STAMP = PROJECT_ROOT / ".web" / "build" / ".opsloop-stamp"
LOCK = PROJECT_ROOT / ".reflex" / "build.lock"
PACKAGE_JSON = PROJECT_ROOT / "reflex.lock" / "package.json"


def reflex_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment that keeps Reflex off the network. OPSLOOP_PUBLIC_URL is dropped: local builds
    carry a placeholder origin that `opsloop.serving` fills in per request."""
    env = dict(base if base is not None else os.environ)
    env.update(
        PATH=f"{BUN.parent}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        REFLEX_DIR=str(PROJECT_ROOT / ".reflex"),
        REFLEX_CHECK_LATEST_VERSION="0",
        REFLEX_TELEMETRY_ENABLED="false",
        NPM_CONFIG_REGISTRY="https://registry.npmjs.org",
        BUN_INSTALL_CACHE_DIR=str(PROJECT_ROOT / ".reflex" / "bun-cache"),
    )
    env.pop("OPSLOOP_PUBLIC_URL", None)
    if BUN.exists():  # Reflex refuses a bun path that does not exist; serving needs no bun
        env["REFLEX_BUN_PATH"] = str(BUN)
    return env


def ensure_bun() -> None:
    """bun ships inside its npm package: install it into .tools once."""
    if BUN.exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to install bun for the dashboard build (apt-get install nodejs npm)")
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--prefix", str(TOOLS), f"bun@{BUN_VERSION}"],
        check=True,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
    )


def _inputs_hash() -> str:
    digest = hashlib.sha256()
    # What the compiled frontend depends on: pages, states (their vars), components, the app module.
    package = PROJECT_ROOT / "opsloop"
    sources = [p for d in ("pages", "state", "components") for p in (package / d).rglob("*.py")]
    files = [*sorted(sources), package / "opsloop.py", PROJECT_ROOT / "rxconfig.py"]
    lock = PROJECT_ROOT / "reflex.lock" / "bun.lock"
    if lock.exists():
        files.append(lock)
    for f in files:
        digest.update(str(f.relative_to(PROJECT_ROOT)).encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()


def build_frontend(*, force: bool = False, quiet: bool = True) -> bool:
    """Build the dashboard when its inputs changed; returns whether it built. The build serves any
    origin (`opsloop.serving` fills it in); a lock keeps concurrent builds apart."""
    import fcntl

    ensure_bun()
    wanted = _inputs_hash()
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and BUILD_DIR.exists() and STAMP.exists() and STAMP.read_text() == wanted:
            return False
        return _build(wanted, quiet)


@contextlib.contextmanager
def _package_json_bytes_kept(path: Path = PACKAGE_JSON) -> Iterator[None]:
    """Reflex copies its install's `package.json` back to the tracked `reflex.lock/package.json`
    as one compact line (same JSON, other bytes), so a fresh checkout was dirty after its first
    build. Put the committed bytes back when the content did not change; keep a real change."""
    before = path.read_bytes() if path.exists() else None
    try:
        yield
    finally:
        if before is not None and path.exists() and path.read_bytes() != before:
            try:
                same = json.loads(path.read_bytes()) == json.loads(before)
            except ValueError:
                same = False
            if same:
                path.write_bytes(before)


def _build(wanted: str, quiet: bool) -> bool:
    out = subprocess.DEVNULL if quiet else None
    with _package_json_bytes_kept():
        result = _export(out)
    if result.returncode != 0:
        raise RuntimeError(f"dashboard build failed: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.returncode}")
    STAMP.write_text(wanted)
    return True


def _export(out: int | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reflex", "export", "--frontend-only", "--no-zip", "--loglevel", "warning"],
        cwd=PROJECT_ROOT,
        env=reflex_env(),
        stdout=out,
        stderr=subprocess.PIPE,
        text=True,
    )


def serve_command(host: str, port: int) -> list[str]:
    """The built dashboard, Reflex's state socket and our API on one port: `opsloop serve
    --dashboard`, as on Render (bounded request heads, rate-limited repeated errors)."""
    return [sys.executable, "-m", "opsloop.cli", "serve", "--dashboard", "--no-migrate", "--host", host, "--port", str(port)]


def serve_env(base: dict[str, str] | None = None) -> dict[str, str]:
    env = reflex_env(base)
    env.update(REFLEX_ENV_MODE="prod", __REFLEX_SKIP_COMPILE="true", __REFLEX_MOUNT_FRONTEND_COMPILED_APP="true")
    return env
