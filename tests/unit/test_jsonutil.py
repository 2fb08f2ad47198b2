"""The JSON policy's rules (`jsonutil`), and the agent SDK holding its side of it: the task body it
takes, the result it answers, the log lines it ships."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from agents.sdk import AgentApp, AgentConfig, TaskContext
from opsloop.backend import jsonutil
from opsloop.shared.logwriter import LogWriter

KEY = "k" * 20


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [jsonutil.MAX_DEPTH + 1, 253, 254, 1024, 1025, 3000])
def test_parse_refuses_depth_past_the_limit(depth: int) -> None:
    with pytest.raises(jsonutil.JSONRejected, match="nested deeper than 64 levels"):
        jsonutil.parse(b"[" * depth + b"]" * depth)


def test_parse_takes_the_limit_and_names_paths() -> None:
    at_limit: Any = []
    for _ in range(63):
        at_limit = [at_limit]
    assert jsonutil.parse(b"[" * 64 + b"]" * 64) == at_limit
    with pytest.raises(jsonutil.JSONRejected, match=r"^payload\.a\[2\] must not contain the NUL"):
        jsonutil.parse(b'{"payload": {"a": [0, 1, "\\u0000"]}}')
    with pytest.raises(jsonutil.JSONRejected, match=r"^entry 1: message must not contain the NUL"):
        jsonutil.parse(b'[{"message": "ok"}, {"message": "\\u0000"}]')
    with pytest.raises(jsonutil.JSONRejected, match=r"^answer at k\[0\]\[0\] is nested deeper than 3 levels$"):
        jsonutil.parse(b'{"k": [[[[1]]]]}', "answer", max_depth=3)
    with pytest.raises(jsonutil.JSONRejected, match=r"^answer at k\[0\]\[0\]\[0\]… is nested deeper than 6 levels$"):
        jsonutil.parse(b'{"k": [[[[[[[1]]]]]]]}', "answer", max_depth=6)
    with pytest.raises(jsonutil.JSONRejected, match="not valid JSON"):
        jsonutil.parse(b"{nope")


def test_integers_within_64_bits_pass_and_beyond_are_refused() -> None:
    for n in (-(2**63), 2**63 - 1, 2**64 - 1, 10**18):
        assert jsonutil.parse(str([n]).encode()) == [n]
    assert jsonutil.parse(b'["12345678901234567890123", 1.5e300]') == ["12345678901234567890123", 1.5e300]  # long digits in a string: fine
    for n in (2**64, -(2**63) - 1, 10**40):
        with pytest.raises(jsonutil.JSONRejected, match="beyond 64 bits"):
            jsonutil.parse(str([n]).encode())
    with pytest.raises(jsonutil.JSONRejected, match="beyond 64 bits"):
        jsonutil.storable({"n": 2**64}, "payload")


def test_dumps_never_fails_on_nesting() -> None:
    deep = nested(400)
    text = jsonutil.dumps({"row": deep, "big": 2**80}).decode()
    assert "nested deeper than 200 levels: not shown" in text and str(2**80) in text


def test_storable_checks_before_the_batch_sees_it() -> None:
    assert jsonutil.storable(None) is None
    assert jsonutil.storable({"a": [1, "x"]}).obj == '{"a":[1,"x"]}'  # encoded once, passed as text
    with pytest.raises(jsonutil.JSONRejected, match="nested deeper"):
        jsonutil.storable(nested(300), "payload")
    with pytest.raises(jsonutil.JSONRejected, match="NUL"):
        jsonutil.storable({"s": "a\x00"}, "data")


def test_log_lines_are_never_refused_for_their_data() -> None:
    async def sink(batch: list[dict[str, Any]]) -> None:
        pass

    writer = LogWriter("svc", sink)
    writer.info("deep", nested(300))
    writer.info("nul", {"s": "a\x00b"})
    writer.info("fine", {"s": "ok"})
    lines = list(writer._buffer)
    assert "nested deeper" in lines[0]["data"]["unstorable"] and "NUL" in lines[1]["data"]["unstorable"]
    assert lines[2]["data"] == {"s": "ok"}
    for line in lines:  # each would pass POST /log's own policy
        jsonutil.parse(jsonutil.dumps(line["data"]))


def sdk_agent() -> AgentApp:
    config = AgentConfig.from_env({"INTERNAL_KEY": KEY, "OPSLOOP_URL": "http://app.test"})
    agent = AgentApp(
        slug="t", service="t", task_types=["t"], endpoint="/t", public_url="http://agent.test", config_service="echo-agent", config=config
    )

    @agent.handler("/t")
    async def handle(body: dict[str, Any], ctx: TaskContext) -> Any:
        return {"deep": nested(300)} if body["payload"] == "deep" else {"ok": body["payload"]}

    return agent


async def test_sdk_holds_task_bodies_and_results_to_the_policy() -> None:
    agent = sdk_agent()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=agent.app), base_url="http://agent.test", headers={"X-Internal-Key": KEY}) as http:
        ok = await http.post("/t", json={"taskId": "1", "payload": "fine"})
        assert ok.status_code == 200 and ok.json() == {"ok": "fine"}
        refused = await http.post("/t", json={"taskId": "2", "payload": "deep"})
        assert refused.status_code == 422 and "task result" in refused.json()["error"] and "nested deeper than 128" in refused.json()["error"]
        body = b'{"taskId": "3", "payload": ' + b"[" * 300 + b"]" * 300 + b"}"
        too_deep = await http.post("/t", content=body, headers={"content-type": "application/json"})
        assert too_deep.status_code == 400 and "nested deeper than 64" in too_deep.json()["error"]
