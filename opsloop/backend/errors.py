"""Domain errors; the API turns each into its status code with `{error: message}`. Their home is
`opsloop.shared.errors` (the JSON policy, shared with the agents, raises them)."""

from opsloop.shared.errors import BadRequest, Conflict, DomainError, NotFound, Unavailable, Unprocessable

__all__ = ["BadRequest", "Conflict", "DomainError", "NotFound", "Unavailable", "Unprocessable"]
