"""Shared helpers of the benchmark scripts: quiet logs, markdown tables, the results folder."""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

RESULTS_DIR = Path(__file__).resolve().parent / "results"
NOISY_LOGGERS = ("mlflow", "causalml", "alembic")


def quiet_logging() -> None:
    """Warnings and errors only; call after importing mlflow, which sets its own level.

    MLflow's UserWarnings about signature hints on model logging are silenced too.
    """
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow(\.|$)")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub markdown table, padded so it also reads well in a terminal."""
    table = [[str(cell).replace("|", r"\|") for cell in row] for row in (header, *rows)]
    widths = [max(len(cell) for cell in column) for column in zip(*table, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(table[0]), rule, *(line(row) for row in table[1:])])


def publish(name: str, markdown: str) -> Path:
    """Print `markdown` and write it to bench/results/<name>."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / name
    path.write_text(markdown)
    print(markdown, flush=True)
    return path


def tree_memory_mb(pid: int) -> float:
    """Memory of a process and all its descendants, in MB (0 if gone).

    Proportional set size (PSS, /proc/<pid>/smaps_rollup): a page shared by forked workers is
    split between them instead of counted once per process, as summing RSS would.
    """
    total_kb, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
            rollup = Path(f"/proc/{current}/smaps_rollup").read_text()
        except OSError:
            continue
        stack += [int(child) for child in children]
        total_kb += next((int(line.split()[1]) for line in rollup.splitlines()
                          if line.startswith("Pss:")), 0)
    return total_kb / 1024


class PeakTreeMemory:
    """Polls a process tree's summed PSS in a thread; `peak_mb` once stopped (a context)."""

    def __init__(self, pid: int, every_s: float = 0.05) -> None:
        self.pid, self.every_s, self.peak_mb = pid, every_s, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> PeakTreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        while not self._stop.wait(self.every_s):
            self.peak_mb = max(self.peak_mb, tree_memory_mb(self.pid))


if TYPE_CHECKING:
    import lightgbm as lgb
    import numpy as np

    from training.uplift import UpliftModel


def booster_inputs(uplift: UpliftModel, matrix: np.ndarray) -> np.ndarray:
    """The matrix an uplift model's boosters see: the rows themselves (T- and X-learner), or
    every row at w=1 then at w=0 (S-learner), as `UpliftModel.predict` builds it."""
    import numpy as np

    if uplift.kind != "s":
        return matrix
    n = len(matrix)
    flag = np.concatenate([np.ones(n), np.zeros(n)])[:, None]
    return np.hstack([flag, np.vstack([matrix, matrix])])


def boosters_of(uplift: UpliftModel) -> list[lgb.Booster]:
    """Every booster a prediction calls: the control model (T, X) and each offer's."""
    return [b for b in (uplift.control, *uplift.treated) if b is not None]
