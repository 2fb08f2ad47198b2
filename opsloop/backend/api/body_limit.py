"""The request body limit; its home is `opsloop.shared.http` (the agents apply it too)."""

from opsloop.shared.http import counting, declared_too_large, too_large_message

__all__ = ["counting", "declared_too_large", "too_large_message"]
