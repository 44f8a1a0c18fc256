"""The one error the state store raises for configuration and database failures."""

from __future__ import annotations


class StateStoreError(RuntimeError):
    """The state store cannot be opened or used: names the URL (password masked) and problem."""

    def __init__(self, url: str, problem: str) -> None:
        self.url = url
        self.problem = problem
        super().__init__(f"state store {url}: {problem}")
