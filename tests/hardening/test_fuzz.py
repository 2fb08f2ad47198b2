"""Property-based fuzzing of every operation in the app's own OpenAPI document (schemathesis),
against a running `opsloop serve`: with Basic Auth no answer is a 5xx or breaks its documented
schema; without credentials every operation but the public ones answers 401 `{error}`.

Valid and invalid inputs both (schemathesis' positive and negative generation). Bounded: a few
examples per operation and mode (the module takes well under a minute). The SSE stream is left
out (an endless response). Nothing generated may leave the machine: Basic Auth only, never the
internal key, so agent registration answers 403 and no generated URL becomes an agent the
dispatcher would call; and the Render routes talk to the local fake of Render's API (with its
own token), never to the real Render.
"""

from __future__ import annotations

import base64
import re
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance

from opsloop.backend.api.app import create_api
from tests.support.processes import PASSWORD, USER, Proc, app_instance, base_env, echo_agent, free_port, wait_for

BASIC = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
SKIPPED = {"GET /logs/stream"}
EXAMPLES = 25
RENDER_TOKEN = "rnd_fuzz_0123456789abcdef"


def operations(with_input: bool = False) -> list[str]:
    """Every operation of the document (built in-process for the test ids; fuzzing uses the served
    one); `with_input`: only those that take parameters or a body (invalid input needs an input)."""
    doc = create_api().openapi()
    return [
        f"{method.upper()} {path}"
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if f"{method.upper()} {path}" not in SKIPPED and (not with_input or op.get("parameters") or op.get("requestBody"))
    ]


@pytest.fixture(scope="module")
def stack(database_url: str) -> Iterator[Proc]:
    """Like the shared `stack`, plus the fake Render API, so the Render routes run for real."""
    port = free_port()
    fake = Proc(
        "fuzz-render-fake",
        [sys.executable, "-m", "opsloop.cli", "render", "fake", "--port", str(port), "--token", RENDER_TOKEN, "--build-seconds", "0.1"],
        base_env(database_url),
        f"http://127.0.0.1:{port}",
    ).start(wait=False)
    wait_for(lambda: _answers(fake.url + "/__fake__/health"), 30, 0.1, "the fake Render API")
    # A repository for render.yaml's services (else taken from this checkout's git remote, which a
    # CI clone may lack): blueprint apply then creates them in the fake.
    render = {"RENDER_API_TOKEN": RENDER_TOKEN, "RENDER_API_BASE_URL": fake.url + "/v1", "OPSLOOP_RENDER_REPO": "https://github.com/example/opsloop"}
    app = app_instance(database_url, name="fuzz-app", **render).start()
    echo = echo_agent(database_url, app.url, name="fuzz-echo").start()
    with httpx.Client(base_url=app.url, headers=BASIC) as c:
        wait_for(lambda: any(a["slug"] == "echo" for a in c.get("/agents").json()["agents"]), 15, what="echo agent registration")
    yield app
    for proc in (echo, app, fake):
        proc.stop()


@pytest.fixture(scope="module")
def probe_app(database_url: str, stack: Proc) -> Iterator[Proc]:
    """A second instance on the same database for the unauthenticated probes (its limiter is its own)."""
    app = app_instance(database_url, name="fuzz-probe-app").start()
    yield app
    app.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def api_schema(stack: Proc) -> Any:
    return schemathesis.openapi.from_url(stack.url + "/openapi.json", headers=BASIC, timeout=10)


def fuzz(api_schema: Any, label: str, mode: GenerationMode, check: Any) -> None:
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, f"{label} is not in the served document"

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: Any) -> None:
        check(case)

    run()


def authenticated(stack) -> Any:
    def check(case: Any) -> None:
        response = case.call(base_url=stack.url, headers=BASIC, timeout=10)
        case.validate_response(response, checks=CHECKS)

    return check


@pytest.mark.parametrize("label", operations())
def test_valid_input(api_schema, stack, label: str) -> None:
    fuzz(api_schema, label, GenerationMode.POSITIVE, authenticated(stack))


@pytest.mark.parametrize("label", operations(with_input=True))
def test_invalid_input(api_schema, stack, label: str) -> None:
    fuzz(api_schema, label, GenerationMode.NEGATIVE, authenticated(stack))


@pytest.mark.parametrize("label", operations())
def test_unauthenticated(api_schema, probe_app: Proc, label: str) -> None:
    """Without valid credentials every operation but the public ones is refused: 401, or 429 once
    the generated (wrong) credentials from this address have been throttled. On an instance of its
    own, so the throttled address does not spill into the other tests."""
    public = api_schema.find_operation_by_label(label).definition.raw.get("security") == []

    def check(case: Any) -> None:
        response = case.call(base_url=probe_app.url, timeout=10)
        case.validate_response(response, checks=CHECKS)
        if public:
            return
        sent = {k.lower() for k in response.request.headers}
        if response.status_code == 429:
            assert sent & {"authorization", "x-internal-key"}, f"{label} throttled a request that carried no credentials"
            assert response.headers["retry-after"] and response.json()["error"].startswith("Too many failed")
            return
        assert response.status_code == 401, f"{label} answered {response.status_code} without credentials"
        assert response.json() == {"error": "Unauthorized"}
        assert response.headers["www-authenticate"][0].startswith("Basic")

    fuzz(api_schema, label, GenerationMode.POSITIVE, check)


def test_document_declares_auth_and_docs_page_is_self_contained(stack: Proc) -> None:
    """The document says how to authenticate (and that /health needs nothing); `/docs` loads
    Swagger UI from the app itself, never from a CDN, and sits behind auth like the API."""
    with httpx.Client(base_url=stack.url, headers=BASIC, timeout=10) as c:
        doc = c.get("/openapi.json").json()
        page = c.get("/docs")
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text) + re.findall(r"url: '([^']+)'", page.text)
        fetched = {a: c.get(a) for a in assets}
    schemes = doc["components"]["securitySchemes"]
    assert (schemes["basicAuth"]["type"], schemes["basicAuth"]["scheme"]) == ("http", "basic")
    assert (schemes["internalKey"]["in"], schemes["internalKey"]["name"]) == ("header", "X-Internal-Key")
    assert doc["security"] == [{"basicAuth": []}, {"internalKey": []}]
    assert doc["paths"]["/health"]["get"]["security"] == []
    assert page.status_code == 200 and "swagger-ui" in page.text
    assert sorted(assets) == ["/docs/assets/favicon.png", "/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/openapi.json"]
    assert all(r.status_code == 200 and len(r.content) > 500 for r in fetched.values()), {a: r.status_code for a, r in fetched.items()}
    assert httpx.get(stack.url + "/docs", timeout=10).status_code == 401
    # only the listed files: another file of the same package folder is not served
    assert httpx.get(stack.url + "/docs/assets/redoc.standalone.js", headers=BASIC, timeout=10).status_code == 404
