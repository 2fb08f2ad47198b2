"""The HTTP transport: FastAPI routes for the REST contract, SSE and WebSocket (SPEC section 3)."""
