"""`opsloop seed`: queue the sample tasks and log batches of `examples/`, wait, summarise.

Each example file is a request body as the API takes it, so `curl -d @examples/echo-task.json`
works too: an object with `type` is a task (`POST /task`), an object with `service` and
`message` or an array of those is a log batch (`POST /log`). One seed run tags everything it
sends with its own correlation id (and scopes idempotency keys to it), so the run's tasks can
be found in the dashboard and the API, and running it twice demonstrates idempotency afresh.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from opsloop.backend.config import PROJECT_ROOT
from opsloop.cli.client import Client, ClientError

EXAMPLES_DIR = PROJECT_ROOT / "examples"


@dataclass
class Example:
    path: Path
    body: Any

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def is_task(self) -> bool:
        return isinstance(self.body, dict) and "type" in self.body


def load_example(path: Path) -> Example:
    """One example file, checked for a shape the API takes (a bad file is one clear error)."""
    try:
        body = json.loads(path.read_text())
    except OSError as exc:
        raise ClientError(f"cannot read example {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ClientError(f"example {path} is not valid JSON: {exc.msg} at line {exc.lineno}") from None

    def is_log(entry: Any) -> bool:
        return isinstance(entry, dict) and "service" in entry and "message" in entry

    if isinstance(body, dict) and "type" in body:
        return Example(path, body)
    if is_log(body) or (isinstance(body, list) and body and all(is_log(e) for e in body)):
        return Example(path, body)
    raise ClientError(f"example {path}: neither a task (an object with type and source) nor log entries (objects with service and message)")


def find_examples(selected: list[str] | None) -> list[Example]:
    if selected:
        paths = []
        for raw in selected:
            p = Path(raw)
            if not p.exists() and (EXAMPLES_DIR / raw).exists():
                p = EXAMPLES_DIR / raw
            paths.append(p)
    else:
        paths = sorted(EXAMPLES_DIR.glob("*.json"))
        if not paths:
            raise ClientError(f"no example files in {EXAMPLES_DIR}")
    return [load_example(p) for p in paths]


@dataclass
class Run:
    """What one seed run sent and what came back."""

    run_id: str
    task_example: dict[str, str] = field(default_factory=dict)  # task id → example name
    queued: Counter[str] = field(default_factory=Counter)  # example → tasks created
    deduplicated: Counter[str] = field(default_factory=Counter)  # example → creates answered with an existing task
    rejected: dict[str, str] = field(default_factory=dict)  # example → the server's refusal
    rejected_count: Counter[str] = field(default_factory=Counter)
    log_lines: int = 0


def task_body(example: Example, run_id: str) -> dict[str, Any]:
    body = {**example.body, "correlationId": run_id}
    if isinstance(body.get("idempotencyKey"), str):
        body["idempotencyKey"] = f"{body['idempotencyKey']}:{run_id}"
    return body


def queue_tasks(client: Client, examples: list[Example], count: int, run: Run, progress: Progress) -> None:
    bar = progress.add_task("queueing", total=count)
    for i in range(count):
        example = examples[i % len(examples)]
        try:
            answer = client.post("/task", task_body(example, run.run_id))
        except ClientError as exc:
            if exc.status is None or exc.status in (401, 403) or exc.status >= 500:
                raise
            run.rejected[example.name] = f"{exc.status} {exc.reason}"
            run.rejected_count[example.name] += 1
        else:
            if answer["id"] in run.task_example:
                run.deduplicated[example.name] += 1
            else:
                run.task_example[answer["id"]] = example.name
                run.queued[example.name] += 1
        progress.advance(bar)


def send_logs(client: Client, examples: list[Example], run: Run) -> None:
    for example in examples:
        entries = example.body if isinstance(example.body, list) else [example.body]
        tagged = [{**e, "correlationId": run.run_id} for e in entries]
        answer = client.post("/log", tagged if isinstance(example.body, list) else tagged[0])
        run.log_lines += answer.get("count", 1)


def unfinished(client: Client, run_id: str) -> int:
    return sum(1 for status in ("queued", "running") for _ in client.pages("/tasks", "tasks", correlationId=run_id, status=status, limit=200))


def wait_tasks(client: Client, run: Run, timeout: float, progress: Progress) -> bool:
    """Poll until no task of the run is queued or running; False on timeout."""
    total = len(run.task_example)
    bar = progress.add_task("finishing", total=total)
    deadline = time.monotonic() + timeout
    while True:
        left = unfinished(client, run.run_id)
        progress.update(bar, completed=total - left)
        if left == 0:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (exact for the small samples a seed run produces)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


def seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def fmt_s(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def summary(client: Client, run: Run, console: Console) -> bool:
    """Print the table; True when every queued task ended `done`."""
    rows = {t["id"]: t for t in client.pages("/tasks", "tasks", correlationId=run.run_id, limit=200)}
    by_example: dict[str, Counter[str]] = {}
    durations: dict[str, list[float]] = {}
    failures: Counter[tuple[str, str, str]] = Counter()  # (example, status, reason) → tasks
    sample: dict[tuple[str, str, str], str] = {}
    for task_id, name in run.task_example.items():
        task = rows.get(task_id)
        status = task["status"] if task else "missing"
        by_example.setdefault(name, Counter())[status] += 1
        if task and status == "done":
            d = seconds(task["created_at"], task["finished_at"])
            if d is not None:
                durations.setdefault(name, []).append(d)
        elif task and status in ("error", "cancelled"):
            raw_error = task.get("error")
            error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
            reason = f"after {error['attempts']} attempt(s): {error.get('message')}" if error.get("attempts") else str(error.get("message", status))
            key = (name, status, reason)
            failures[key] += 1
            sample.setdefault(key, task_id)

    table = Table(title=f"seed {run.run_id}", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for col, justify in (
        ("example", "left"),
        ("queued", "right"),
        ("dedup", "right"),
        ("done", "right"),
        ("error", "right"),
        ("other", "right"),
        ("rejected", "right"),
        ("p50", "right"),
        ("p95", "right"),
    ):
        table.add_column(col, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    names = list(dict.fromkeys([*run.queued, *run.rejected_count]))
    all_counts: Counter[str] = Counter()
    all_durations: list[float] = []
    for name in names:
        counts = by_example.get(name, Counter())
        all_counts.update(counts)
        all_durations.extend(durations.get(name, []))
        other = sum(n for s, n in counts.items() if s not in ("done", "error"))
        table.add_row(
            name,
            str(run.queued[name]),
            str(run.deduplicated[name]),
            str(counts["done"]),
            str(counts["error"]),
            str(other),
            str(run.rejected_count[name]),
            fmt_s(percentile(durations.get(name, []), 0.5)),
            fmt_s(percentile(durations.get(name, []), 0.95)),
        )
    table.add_section()
    table.add_row(
        "total",
        str(sum(run.queued.values())),
        str(sum(run.deduplicated.values())),
        str(all_counts["done"]),
        str(all_counts["error"]),
        str(sum(n for s, n in all_counts.items() if s not in ("done", "error"))),
        str(sum(run.rejected_count.values())),
        fmt_s(percentile(all_durations, 0.5)),
        fmt_s(percentile(all_durations, 0.95)),
        style="bold",
    )
    console.print(table)
    if run.deduplicated:
        console.print("dedup: creates answered with this run's earlier task (same idempotencyKey)")
    if all_durations:
        console.print("p50/p95: created → done (queueing, dispatch and the agent's work)")
    if run.log_lines:
        console.print(f"log lines stored: {run.log_lines}  (GET /logs?correlationId={run.run_id})")
    for name, reason in run.rejected.items():
        console.print(f"rejected: {name}: {reason}", soft_wrap=True)
    for (name, status, reason), n in failures.most_common(10):
        console.print(f"[red]{name}: {n} task(s) ended {status} {reason}[/red] (e.g. GET /task/{sample[(name, status, reason)]})", soft_wrap=True)
    return all_counts["done"] == len(run.task_example)


def run(args: argparse.Namespace) -> int:
    console = Console(highlight=False)
    examples = find_examples(args.example)
    tasks = [e for e in examples if e.is_task]
    logs = [e for e in examples if not e.is_task]
    count = args.count if args.count is not None else len(tasks)
    if count < 0:
        raise ClientError("--count must be 0 or more")
    if count and not tasks:
        raise ClientError("no task examples selected (a task example is an object with type and source)")
    seed_run = Run(run_id=f"seed-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}")
    with Client.from_args(args) as client:
        client.health()
        handled = client.live_agents()
        console.print(f"seeding {client.url} as {client.auth[0]}")
        console.print(f"  {count} task(s) from {len(tasks)} task example(s), {len(logs)} log example(s)")
        console.print(f"  correlation id {seed_run.run_id}")
        for task_type in sorted({e.body["type"] for e in tasks if isinstance(e.body["type"], str)} - set(handled)):
            console.print(f"  [yellow]no live agent handles {task_type!r}[/yellow] (GET /agents)")
        if logs:
            send_logs(client, logs, seed_run)
        progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        with progress:
            queue_tasks(client, tasks, count, seed_run, progress)
            finished = True
            if seed_run.task_example and not args.skip_wait:
                finished = wait_tasks(client, seed_run, args.timeout, progress)
        if args.skip_wait:
            console.print(f"queued {len(seed_run.task_example)} task(s); not waiting")
            console.print(f"  follow them: GET /tasks?correlationId={seed_run.run_id}")
            for name, reason in seed_run.rejected.items():
                console.print(f"rejected: {name}: {reason}")
            return 0 if seed_run.task_example or not count else 1
        all_done = summary(client, seed_run, console)
    if not finished:
        console.print(f"[red]timed out after {args.timeout:g}s with tasks still queued or running[/red]")
        return 1
    if count and not seed_run.task_example:
        console.print("[red]nothing was queued[/red]")
        return 1
    return 0 if all_done else 1
