"""The schema is the source of truth: Settings must not drift from it; reports never hold values."""

from __future__ import annotations

import json

from opsloop.backend.config import SCHEMA_PATH, Settings, load_schema, secret_keys, service_keys, validate_config

GOOD_APP = {"BASIC_AUTH_USER": "admin", "BASIC_AUTH_PASS": "a-long-password", "INTERNAL_KEY": "k" * 20}


def test_settings_fields_match_schema_keys_and_defaults() -> None:
    schema = load_schema()["properties"]
    assert set(Settings.model_fields) == set(schema), "Settings and infra/config.schema.json list different keys"
    for key, spec in schema.items():
        field = Settings.model_fields[key]
        if "default" in spec:
            parsed = type(field.default)(spec["default"]) if field.default is not None else None
            assert parsed == field.default, f"{key}: default differs between Settings and schema"
        else:
            assert field.default is None, f"{key}: Settings has a default the schema does not declare"


def test_env_example_is_generated_from_the_schema() -> None:
    import runpy

    render = runpy.run_path(str(SCHEMA_PATH.parents[1] / "scripts" / "env_example.py"))["render"]
    text = (SCHEMA_PATH.parents[1] / ".env.example").read_text()
    assert text == render(), ".env.example is stale: run `python scripts/env_example.py`"
    for key in load_schema()["properties"]:
        assert f"{key}=" in text, f".env.example misses {key}"


def test_valid_app_config_is_ok(monkeypatch) -> None:
    monkeypatch.setenv("OPSLOOP_IGNORE_DOTENV", "1")
    report = validate_config("app", GOOD_APP)
    assert report.ok, report.errors
    assert report.required == {"BASIC_AUTH_USER": "present", "BASIC_AUTH_PASS": "present", "INTERNAL_KEY": "present"}


def test_missing_and_malformed_keys_are_named_without_values(monkeypatch) -> None:
    monkeypatch.setenv("OPSLOOP_IGNORE_DOTENV", "1")
    secret = "short-secret"
    report = validate_config("app", {"BASIC_AUTH_USER": "admin", "INTERNAL_KEY": secret, "DATABASE_URL": "mysql://x"})
    body = json.dumps(report.as_json())
    assert report.as_json()["status"] == "error"
    assert report.required["BASIC_AUTH_PASS"] == "missing"
    missing = [e for e in report.errors if e["keyword"] == "required"]
    assert missing[0]["params"] == {"missingProperty": "BASIC_AUTH_PASS"}
    paths = {e["instancePath"] for e in report.errors}
    assert {"/INTERNAL_KEY", "/DATABASE_URL"} <= paths
    assert secret not in body and "mysql://x" not in body
    assert "BASIC_AUTH_PASS" in report.summary() and "INTERNAL_KEY" in report.summary()


def test_each_service_has_its_own_required_keys() -> None:
    required, _ = service_keys("echo-agent")
    assert required == ["INTERNAL_KEY"]
    assert {"BASIC_AUTH_PASS", "INTERNAL_KEY", "DATABASE_URL", "RENDER_API_TOKEN"} <= secret_keys()


def test_postgres_url_alias_is_normalised(monkeypatch) -> None:
    monkeypatch.setenv("OPSLOOP_IGNORE_DOTENV", "1")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("POSTGRES_URL", "postgres://u:p@db:5432/x")
    assert Settings(_env_file=None).database_url == "postgresql://u:p@db:5432/x"
