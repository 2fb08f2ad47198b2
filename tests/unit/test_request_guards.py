"""The pure pieces of the request guards: which `next` paths are followed, which client address a
request is counted under, how the guessing limiter grows its delay, what counts as JSON."""

from __future__ import annotations

import pytest

from opsloop.backend.api.csrf import is_json, same_origin
from opsloop.backend.api.proxies import TrustedProxies
from opsloop.backend.limiter import GuessLimiter, address_key
from opsloop.backend.redirects import safe_next

HOSTILE = [
    "https://evil.example/",
    "javascript:alert(1)",
    "JAVASCRIPT:alert(1)",
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "\\/evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/%2F/evil.example",
    "/%2f%2fevil.example",
    "/%5Cevil.example",
    "/%09/evil.example",
    "%2F%2Fevil.example",
    "",
    None,
    "/" + "a" * 5000,
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_next_becomes_home(value: str | None) -> None:
    assert safe_next(value) == "/"


@pytest.mark.parametrize("value", ["/", "/dashboard/tasks", "/dashboard/tasks?status=error&type=echo", "/dashboard/tasks/0b1c#events"])
def test_plain_paths_are_kept(value: str) -> None:
    assert safe_next(value) == value


def scope(client: str, *headers: tuple[str, str], scheme: str = "http") -> dict:
    return {"client": (client, 50000), "scheme": scheme, "headers": [(k.encode(), v.encode()) for k, v in headers]}


def test_forwarded_for_is_ignored_from_an_untrusted_peer() -> None:
    proxies = TrustedProxies("", uvicorn_spec="")
    assert proxies.client(scope("198.51.100.2", ("x-forwarded-for", "203.0.113.9"))) == "198.51.100.2"
    assert not proxies.is_tls(scope("198.51.100.2", ("x-forwarded-proto", "https")))


def test_uvicorns_rewrite_from_loopback_is_undone() -> None:
    """uvicorn (FORWARDED_ALLOW_IPS default) replaced the loopback peer with the header's address."""
    proxies = TrustedProxies("", uvicorn_spec="127.0.0.1,::1")
    rewritten = scope("203.0.113.9", ("x-forwarded-for", "203.0.113.9"), ("x-forwarded-proto", "https"), scheme="https")
    assert proxies.client(rewritten) == "127.0.0.1"
    assert not proxies.is_tls(rewritten)


def test_behind_a_trusted_proxy_the_nearest_untrusted_address_counts() -> None:
    proxies = TrustedProxies("10.0.0.0/8", uvicorn_spec="")
    chain = ("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.1.2.3")
    assert proxies.client(scope("10.9.9.9", chain)) == "203.0.113.9"  # the client cannot pick 1.2.3.4
    assert proxies.is_tls(scope("10.9.9.9", chain, ("x-forwarded-proto", "https")))
    assert proxies.client(scope("10.9.9.9")) == "10.9.9.9"


def test_limiter_counts_before_evaluating_and_grows_exponentially() -> None:
    limiter = GuessLimiter(free=3, max_delay_s=60)
    assert [limiter.begin("a") for _ in range(3)][:2] == [0.0, 0.0]
    first = limiter.begin("a")
    assert 0 < first <= 1.0  # the third failure blocked the address for a second
    assert limiter.check("b") == 0.0  # other addresses are untouched
    limiter.forgive("a")
    assert limiter.check("a") == 0.0
    for _ in range(3 + 6):
        limiter.fail("c")
    assert 32 < limiter.check("c") <= 60  # 2**6, capped at the maximum


def test_ipv6_clients_are_counted_by_their_64() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert address_key("203.0.113.9") == "203.0.113.9"


@pytest.mark.parametrize(
    ("value", "ok"),
    [(b"application/json", True), (b"Application/JSON; charset=utf-8", True), (b"application/jsonp", False), (b"text/plain", False), (None, False)],
)
def test_json_content_types(value: bytes | None, ok: bool) -> None:
    assert is_json(value) is ok


def test_same_origin() -> None:
    allowed = frozenset({"http://localhost:3000"})
    assert same_origin("http://127.0.0.1:3000", "127.0.0.1:3000", allowed)
    assert same_origin("http://localhost:3000/", "127.0.0.1:3000", allowed)
    assert not same_origin("http://127.0.0.1:3001", "127.0.0.1:3000", allowed)
    assert not same_origin("null", "127.0.0.1:3000", allowed)


def test_csp_follows_a_rebuild(tmp_path) -> None:
    """A dashboard rebuilt under a running server brings new inline scripts: the CSP allows them
    (and no longer the old ones) once the build is looked at again."""
    from opsloop.backend.api.security_headers import Policy, inline_script_hashes

    build = tmp_path / "build" / "client"
    build.mkdir(parents=True)
    (build / "index.html").write_text("<script>window.a = 1</script>")
    policy = Policy(build)
    policy.CHECK_S = 0.0  # look every time (the server looks at most once a second)
    old = inline_script_hashes(b"<script>window.a = 1</script>").pop()
    assert old in dict(policy.headers())[b"content-security-policy"].decode()
    (build / "index.html").write_text("<script>window.b = 22</script>")
    (tmp_path / "build" / ".opsloop-stamp").write_text("new build")
    csp = dict(policy.headers())[b"content-security-policy"].decode()
    assert inline_script_hashes(b"<script>window.b = 22</script>").pop() in csp and old not in csp


def test_a_bad_trusted_proxy_entry_is_left_out() -> None:
    proxies = TrustedProxies("10.0.0.0/8, not-an-address, 300.1.1.1", uvicorn_spec="")
    assert [str(n) for n in proxies.networks] == ["10.0.0.0/8"]
