"""The one error the state store raises for configuration and database failures."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError


class StateStoreError(RuntimeError):
    """The state store cannot be opened or used: names the URL (password masked) and problem."""

    def __init__(self, url: str, problem: str) -> None:
        self.url = url
        self.problem = problem
        super().__init__(f"state store {url}: {problem}")


def describe(exc: BaseException) -> str:
    """A database error's driver message on one line, without SQLAlchemy's statement dump.

    Takes a SQLAlchemy DBAPIError (its driver error is `orig`) or a driver's own error.
    """
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return "; ".join(lines) or type(cause).__name__
