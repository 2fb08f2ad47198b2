"""Bodies of the /render routes, validated strictly like every body: a wrong type is a 400
naming the field, never a coercion."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, StrictBool, StrictStr


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class RenderDeploy(_Body):
    clearCache: StrictBool = False


class RenderEnvPatch(_Body):
    env: dict[str, StrictStr]
    clear: StrictBool = False
    deploy: StrictBool = True  # a change takes effect on a deploy, as in Render's dashboard


class RenderServiceCreate(_Body):
    service: dict[str, Any]
    env: dict[str, StrictStr] | None = None


class BlueprintApply(_Body):
    dryRun: StrictBool = False
    path: StrictStr | None = None
    env: dict[str, StrictStr] | None = None  # the operator's values of render.yaml's `sync: false` keys (sealed in the task)
    wait: StrictBool = False  # wait for the deploys, then check each web service's health and /config/validate
