"""ASGI entry of the headless API (`opsloop serve`, `uvicorn opsloop.backend.api.asgi:app`)."""

from opsloop.backend.api.app import create_api

app = create_api(manage_runtime=True)
