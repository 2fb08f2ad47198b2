"""A small SDK for opsloop agents: an app with auth, registration, heartbeats and batched logs.

An agent is its own process. `AgentApp` gives it `/health` (public), `/config/validate` and
`/cancel` (internal key), handler routes guarded by the internal key, registration with the
orchestrator at start (retried until it answers), a heartbeat loop, and a `LogWriter` that ships
batches to `POST /log`.
"""

from agents.sdk.app import AgentApp, TaskContext
from agents.sdk.config import AgentConfig

__all__ = ["AgentApp", "AgentConfig", "TaskContext"]
