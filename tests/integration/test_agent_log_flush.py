"""An agent stopped with SIGTERM ships the log lines it still holds before it exits.

The echo agent's log sink goes through a proxy the test controls: while it is cut the agent's
lines pile up in its buffer (and its writer backs off); the sink comes back and the agent is told
to stop at once. Every line must be stored.
"""

from __future__ import annotations

import signal
from urllib.parse import urlsplit

from tests.conftest import Stack
from tests.support.processes import echo_agent, wait_for
from tests.support.proxy import TcpProxy
from tests.support.tasks import create, query, register_agent, unique, wait_all


def lines(database_url: str, corr: str) -> list[str]:
    return [r["message"] for r in query(database_url, "SELECT message FROM logs WHERE correlation_id = %s", (corr,))]


def test_agent_flushes_its_log_lines_on_sigterm(stack: Stack) -> None:
    app = urlsplit(stack.url)
    sink = TcpProxy(app.hostname or "127.0.0.1", app.port or 80)
    agent = echo_agent(stack.database_url, stack.url, name="flush-echo", LOGGING_URL=f"http://127.0.0.1:{sink.port}").start()
    corr = unique("flush")
    try:
        with stack.client() as client, stack.service_client() as service:
            register_agent(service, "flusher", agent.url, ["flush.echo"])
            sink.outage()
            ids = [create(client, "flush.echo", {"i": i}, correlationId=corr)["id"] for i in range(5)]
            wait_all(stack.database_url, corr, len(ids), timeout=30)  # ran, so each logged its two lines: held, unsent
            assert lines(stack.database_url, corr) == []
            sink.restore()
            agent.kill(signal.SIGTERM)
        stored = wait_for(lambda: (got := lines(stack.database_url, corr)) and len(got) >= 10 and got, timeout=10, what="the flushed lines")
        assert sorted(stored) == sorted(["ECHO_REQUEST"] * 5 + ["ECHO_RESPONSE"] * 5)
    finally:
        agent.stop()
        sink.close()
