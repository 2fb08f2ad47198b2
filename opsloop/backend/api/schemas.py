"""Request bodies, validated strictly: a wrong type is a 400 naming the field, never a coercion."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

Id = Field(default=None, min_length=1, max_length=200)


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TaskCreate(_Body):
    type: StrictStr = Field(min_length=1, max_length=200)
    source: StrictStr = Field(min_length=1, max_length=200)
    payload: Any = None
    correlationId: StrictStr | None = Id
    agentSlug: StrictStr | None = Id
    idempotencyKey: StrictStr | None = Id


class TaskPatch(_Body):
    ifVersion: StrictInt = Field(ge=1, le=2**31 - 1)  # the version column is a 32-bit integer
    status: StrictStr | None = None
    result: Any = None
    error: Any = None
    payload: Any = None
    correlationId: StrictStr | None = Id


class TaskEventCreate(_Body):
    taskId: StrictStr = Field(min_length=1, max_length=64)
    actor: StrictStr = Field(min_length=1, max_length=200)
    kind: StrictStr = Field(min_length=1, max_length=200)
    data: Any = None
    correlationId: StrictStr | None = Id
    traceId: StrictStr | None = Id


class LogCreate(_Body):
    service: StrictStr = Field(min_length=1, max_length=200)
    message: StrictStr = Field(min_length=1, max_length=32_768)
    level: Literal["debug", "info", "warn", "error"] = "info"
    data: Any = None
    taskId: StrictStr | None = Field(default=None, pattern=r"^[0-9a-fA-F-]{32,36}$")
    correlationId: StrictStr | None = Id
    traceId: StrictStr | None = Id


class AgentRegistration(_Body):
    slug: StrictStr = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    url: StrictStr = Field(min_length=1, max_length=500, pattern=r"^(https?|local)://")
    taskTypes: list[StrictStr] = Field(min_length=1, max_length=100)
    endpoint: StrictStr = Field(default="/", max_length=200, pattern=r"^/")
    limits: dict[str, dict[str, StrictInt]] | None = None
    configUrl: StrictStr | None = Field(default=None, max_length=500)


class AgentHeartbeat(_Body):
    slug: StrictStr = Field(min_length=1, max_length=100)
