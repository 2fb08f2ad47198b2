"""Domain errors; the API turns each into its status code with `{error: message}` (shared: the
JSON policy's refusal is one, and agents use the policy too)."""


class DomainError(Exception):
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(DomainError):
    status = 400


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class Unprocessable(DomainError):
    status = 422


class Unavailable(DomainError):
    status = 503
