"""Render.com automation: the API client, a local fake of Render's API, the OpenAPI
conformance checker used by tests, and Blueprint (render.yaml) plan/apply."""
