"""render.yaml's build, pre-deploy and start commands, run verbatim (`bash -c <command>`) in a
clean checkout, the way Render runs them: the app and the echo agent come up healthy, wired by
the env vars render.yaml gives them, and an echo task goes through.

The clean checkout is `git clone` of this repository (HEAD) with the working tree's tracked and
untracked-but-not-ignored files laid over it (`git ls-files --cached --others --exclude-standard`):
exactly what a commit of the current work would contain, and nothing git ignores (no `.env`,
`.venv`, `.web`, databases or build output).

Python packages: the commands run in a *fresh* virtualenv whose only extra path is this venv's
site-packages (a `.pth` file; its `pip` is this venv's pip), so `pip install -r requirements.txt`
runs verbatim and finds every pinned requirement already satisfied instead of downloading
~100 MB (minutes, and a network Render has but these tests should not need). What that leaves
unchecked is only that the pins resolve on PyPI, which `scripts/bootstrap.sh` does on every fresh
machine. The whole test takes ~25 s, so it is in the default suite.

The static site's build (`reflex export`, which installs the frontend's node packages from the
npm registry) takes a minute or more: it is the `slow` test at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.database import fresh_database
from tests.support.processes import ARTIFACTS, Proc, free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
BLUEPRINT = yaml.safe_load((ROOT / "render.yaml").read_text(encoding="utf-8"))
SERVICES = {s["name"]: s for s in BLUEPRINT["services"]}
SECRETS = {
    "BASIC_AUTH_PASS": "clean-checkout-pass-1",
    "INTERNAL_KEY": "clean-checkout-internal-key-0123",
    "SESSION_SECRET": "clean-checkout-session-secret-0123456789",
}


def checkout(dest: Path) -> Path:
    """HEAD, plus the working tree's not-ignored files (see the module docstring)."""
    subprocess.run(["git", "clone", "--quiet", "--no-local", str(ROOT), str(dest)], check=True, capture_output=True)
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, check=True, capture_output=True)
    for rel in filter(None, listed.stdout.decode().split("\0")):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
        elif not src.exists() and (dest / rel).exists():
            (dest / rel).unlink()  # deleted in the working tree
    return dest


def fresh_venv(dest: Path) -> Path:
    """A new virtualenv seeing this one's packages and console scripts (pip, reflex, …), as if
    `pip install` had put them there (`--without-pip`: ensurepip alone costs ~15 s)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(dest)], check=True, capture_output=True)
    site = next((dest / "lib").glob("python3*/site-packages"))
    (site / "reuse-test-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    ours = Path(sys.executable).parent
    for script in ours.iterdir():
        target = dest / "bin" / script.name
        if target.exists() or not script.is_file():
            continue
        text = script.read_bytes()
        if text.startswith(b"#!" + str(ours).encode()):  # a console script of this venv
            target.write_bytes(b"#!" + str(dest / "bin" / "python").encode() + text[text.index(b"\n") :])
            target.chmod(0o755)
    return dest / "bin"


def yaml_env(service: dict[str, Any], refs: dict[str, str]) -> dict[str, str]:
    """The service's env as Render would set it: plain values, plus `refs` for secrets and references."""
    env = {e["key"]: str(e["value"]) for e in service.get("envVars", []) if "value" in e}
    wanted = {e["key"] for e in service.get("envVars", []) if "value" not in e}
    missing = wanted - set(refs) - {"RENDER_API_TOKEN"}  # the monitor is optional: no token here
    assert not missing, f"test gives no value for {missing}"
    env.update({k: v for k, v in refs.items() if k in wanted})
    return env


def shell_env(bin_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "LC_ALL", "TMPDIR")}
    return {
        **keep,
        "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "VIRTUAL_ENV": str(bin_dir.parent),
        "OPSLOOP_IGNORE_DOTENV": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def run(command: str, cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"`{command}` exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def start(name: str, command: str, cwd: Path, env: dict[str, str], url: str) -> Proc:
    proc = Proc(name, ["bash", "-c", command], env, url)
    log = open(proc.log_path, "ab")  # Proc.start runs in the project root; this one runs in the checkout
    proc.popen = subprocess.Popen(proc.args, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc.wait_healthy(60)
    return proc


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    base = tmp_path_factory.mktemp("render-yaml")
    yield checkout(base / "checkout"), fresh_venv(base / "venv")


def test_app_and_echo_agent_build_and_start_verbatim(clean: tuple[Path, Path]) -> None:
    repo, bin_dir = clean
    app, echo = SERVICES["opsloop"], SERVICES["opsloop-echo-agent"]
    app_port, echo_port = free_port(), free_port()
    procs: list[Proc] = []
    with fresh_database("opsloop_render_yaml") as database_url:
        try:
            app_env = shell_env(bin_dir, {"PORT": str(app_port), **yaml_env(app, {"DATABASE_URL": database_url, **SECRETS})})
            built = run(app["buildCommand"], repo, app_env)
            assert "Requirement already satisfied" in built.stdout
            run(app["preDeployCommand"], repo, app_env)
            procs.append(start("render-yaml-app", app["startCommand"], repo, app_env, f"http://127.0.0.1:{app_port}"))

            refs = {"ECHO_AGENT_URL": f"127.0.0.1:{echo_port}", "OPSLOOP_URL": f"127.0.0.1:{app_port}", **SECRETS}  # fromService hostport
            echo_env = shell_env(bin_dir, {"PORT": str(echo_port), **yaml_env(echo, refs)})
            assert echo["buildCommand"] == app["buildCommand"]  # the same build, already run above in this checkout
            procs.append(start("render-yaml-echo", echo["startCommand"], repo, echo_env, f"http://127.0.0.1:{echo_port}"))

            user = app_env["BASIC_AUTH_USER"]
            with httpx.Client(base_url=f"http://127.0.0.1:{app_port}", auth=(user, SECRETS["BASIC_AUTH_PASS"]), timeout=10) as http:
                assert http.get("/health").json()["status"] == "ok"
                wait_for(
                    lambda: any(a["slug"] == "echo" and a["live"] for a in http.get("/agents").json()["agents"]), timeout=20, what="echo registration"
                )
                task = http.post("/task", json={"type": "echo", "source": "render-yaml", "payload": {"hello": "render"}}).json()
                done = wait_for(lambda: (t := http.get(f"/task/{task['id']}").json()["task"])["status"] == "done" and t, timeout=20, what="echo task")
                assert done["result"]["output"]["received"] == {"hello": "render"}
        finally:
            for proc in reversed(procs):
                proc.stop()


@pytest.mark.slow
def test_static_site_build_publishes_its_directory(clean: tuple[Path, Path]) -> None:
    """`reflex export` needs bun; on Render Reflex downloads it, here it comes from .tools (npm)."""
    repo, bin_dir = clean
    site = SERVICES["opsloop-dashboard"]
    bun = ROOT / ".tools" / "node_modules" / ".bin"
    if not (bun / "bun").exists():
        pytest.skip("bun is not installed under .tools (scripts/bootstrap.sh installs it)")
    env = shell_env(bin_dir, {**yaml_env(site, {}), "REFLEX_CHECK_LATEST_VERSION": "0", "REFLEX_DIR": str(repo / ".reflex")})
    env["PATH"] = f"{bin_dir}:{bun}:/usr/local/bin:/usr/bin:/bin"
    proc = run(site["buildCommand"], repo, env, timeout=900)
    (ARTIFACTS / "render-yaml-static-build.log").write_text(proc.stdout + proc.stderr)
    published = repo / site["staticPublishPath"]
    assert (published / "index.html").is_file(), f"{published} has no index.html"
    assert "opsloop.onrender.com" in "".join(p.read_text(errors="ignore") for p in published.rglob("*.js"))  # OPSLOOP_PUBLIC_URL baked in
