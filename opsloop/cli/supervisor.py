"""Keep `opsloop dev`'s children running: one that dies unexpectedly is restarted with backoff and
the others go on (a kill -9 of the echo agent used to stop the app and the database, and 30
queued tasks ended `error`). Everything stops only when the supervisor is told to.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

Say = Callable[[str, str], None]


@dataclass(frozen=True)
class Backoff:
    """1 s, 2 s, 4 s … up to `max_s`; a child that stayed up `stable_s` starts again at `first_s`."""

    first_s: float = 1.0
    max_s: float = 30.0
    stable_s: float = 30.0

    def next(self, previous_s: float | None, uptime_s: float) -> float:
        if previous_s is None or uptime_s >= self.stable_s:
            return self.first_s
        return min(previous_s * 2, self.max_s)


class Child(Protocol):
    name: str  # the output prefix
    label: str  # what the messages call it

    def start(self) -> None: ...

    def exit_status(self) -> str | None:
        """None while it runs, else how it ended (e.g. "code -9")."""

    def stop(self) -> None: ...


class ProcessChild:
    """A command in its own session (so a signal reaches its whole tree), output prefixed by name."""

    def __init__(self, name: str, label: str, args: list[str], env: dict[str, str], say: Say) -> None:
        self.name, self.label, self.args, self.env, self.say = name, label, args, env, say
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        threading.Thread(target=self._pump, args=(self.proc.stdout,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in iter(stream.readline, ""):
            self.say(self.name, line.rstrip())

    def exit_status(self) -> str | None:
        if self.proc is None or self.proc.poll() is None:
            return None
        return f"code {self.proc.returncode}"

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


class EmbeddedDatabaseChild:
    """The embedded PostgreSQL (pg_ctl daemonises it, so it is watched through postmaster.pid)."""

    name = "db"
    label = "embedded PostgreSQL"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def start(self) -> None:
        from opsloop.backend.embedded_db import restart_embedded

        restart_embedded(self.data_dir)  # reuses the first start's options (its socket folder)

    def exit_status(self) -> str | None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return "postmaster.pid gone"
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return f"postmaster {pid} gone"
        except PermissionError:  # alive, owned by the embedded_postgres user
            pass
        return None

    def stop(self) -> None:
        from opsloop.backend.embedded_db import stop_embedded

        stop_embedded(self.data_dir)


@dataclass
class _Slot:
    child: Child
    started_at: float
    delay_s: float | None = None
    restart_at: float | None = None
    restarts: int = 0


@dataclass
class Supervisor:
    say: Say
    backoff: Backoff = field(default_factory=Backoff)
    clock: Callable[[], float] = time.monotonic
    slots: list[_Slot] = field(default_factory=list)

    def watch(self, child: Child) -> None:
        """Supervise a child that is already running."""
        self.slots.append(_Slot(child, started_at=self.clock()))

    def tick(self) -> None:
        """Notice children that died and restart those whose backoff has passed."""
        now = self.clock()
        for slot in self.slots:
            if slot.restart_at is None:
                status = slot.child.exit_status()
                if status is None:
                    continue
                slot.delay_s = self.backoff.next(slot.delay_s, now - slot.started_at)
                slot.restart_at = now + slot.delay_s
                self.say(slot.child.name, f"{slot.child.label} exited ({status}); restarting in {slot.delay_s:g}s")
            elif now >= slot.restart_at:
                slot.restart_at = None
                slot.started_at = now
                slot.restarts += 1
                try:
                    slot.child.start()
                except Exception as exc:  # counts as another crash on the next tick
                    self.say(slot.child.name, f"{slot.child.label} did not start: {exc}")
                    continue
                self.say(slot.child.name, f"{slot.child.label} restarted (restart {slot.restarts})")

    def run_forever(self, interval_s: float = 0.2) -> None:
        """Supervise until interrupted (KeyboardInterrupt: Ctrl-C or SIGTERM in `opsloop dev`)."""
        while True:
            self.tick()
            time.sleep(interval_s)

    def stop_all(self) -> None:
        """Stop every child, last started first (the agent before the app before the database)."""
        for slot in reversed(self.slots):
            slot.child.stop()
