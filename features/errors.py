"""The one error every contract reader raises."""

from __future__ import annotations


class ContractError(ValueError):
    """A contract file violates ../shared/DATA_CONTRACT.md: names the file, column and problem."""

    def __init__(self, file: str, problem: str, column: str | None = None) -> None:
        self.file = file
        self.column = column
        self.problem = problem
        where = f"{file}: column '{column}'" if column else file
        super().__init__(f"{where}: {problem}")

    def __reduce__(self) -> tuple[type[ContractError], tuple[str, str, str | None]]:
        # rebuilt from its parts when it crosses a process boundary (batch-score's workers)
        return type(self), (self.file, self.problem, self.column)
