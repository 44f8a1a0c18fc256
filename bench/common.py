"""Shared helpers of the benchmark scripts: quiet logs, markdown tables, the results folder."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

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
