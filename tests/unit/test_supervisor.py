"""`opsloop dev`'s supervisor: a dead child is announced, restarted after a growing backoff, and
the others are left alone; a child that stayed up long enough starts again at the first delay."""

from __future__ import annotations

from opsloop.cli.supervisor import Backoff, Supervisor


class FakeChild:
    def __init__(self, name: str, label: str) -> None:
        self.name, self.label = name, label
        self.status: str | None = None
        self.starts = 0
        self.stopped = False

    def start(self) -> None:
        self.starts += 1
        self.status = None

    def exit_status(self) -> str | None:
        return self.status

    def stop(self) -> None:
        self.stopped = True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make() -> tuple[Supervisor, list[tuple[str, str]], Clock, FakeChild, FakeChild]:
    said: list[tuple[str, str]] = []
    clock = Clock()
    sup = Supervisor(lambda who, line: said.append((who, line)), Backoff(first_s=1, max_s=8, stable_s=30), clock)
    app, echo = FakeChild("app", "app"), FakeChild("echo", "echo agent")
    sup.watch(app)
    sup.watch(echo)
    return sup, said, clock, app, echo


def test_a_dead_child_is_announced_and_restarted_after_its_backoff_alone() -> None:
    sup, said, clock, app, echo = make()
    clock.now = 5
    echo.status = "code -9"
    sup.tick()
    assert said == [("echo", "echo agent exited (code -9); restarting in 1s")]
    clock.now = 5.5
    sup.tick()
    assert echo.starts == 0, "not before the backoff has passed"
    clock.now = 6
    sup.tick()
    assert echo.starts == 1 and said[-1] == ("echo", "echo agent restarted (restart 1)")
    assert app.starts == 0 and not app.stopped, "the others are left running"


def test_backoff_doubles_while_it_keeps_crashing_and_resets_once_stable() -> None:
    sup, said, clock, _, echo = make()
    delays = []
    for _ in range(5):  # crashes right after each start
        echo.status = "code 1"
        sup.tick()
        delays.append(said[-1][1].rsplit(" ", 1)[1])
        clock.now += float(delays[-1].rstrip("s"))
        sup.tick()  # restarted
    assert delays == ["1s", "2s", "4s", "8s", "8s"]
    clock.now += 31  # up longer than stable_s
    echo.status = "code 1"
    sup.tick()
    assert said[-1][1].endswith("restarting in 1s")


def test_stop_all_stops_the_last_started_first() -> None:
    sup, _, _, app, echo = make()
    order: list[str] = []
    app.stop = lambda: order.append("app")  # type: ignore[method-assign]
    echo.stop = lambda: order.append("echo")  # type: ignore[method-assign]
    sup.stop_all()
    assert order == ["echo", "app"]
