"""Where a served request's CPU goes: py-spy samples of gunicorn workers, grouped by layer.

The online benchmark profiles `nba serve` under load with this. py-spy samples the workers from
outside (no instrumentation in the measured code). Each sampled stack is charged to the layer of
its innermost frame that belongs to a known layer (LightGBM, the state store, arbitration, ...);
the rest of Flask, gunicorn and the sockets keep what is left. A missing py-spy (or no ptrace
permission) gives no table, never a failed benchmark.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

#: (layer, substrings of a frame "function (file:line)"), innermost match wins; order breaks
#: ties within one frame. Paths are the repo's modules and the libraries' package directories.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("models: LightGBM single-row C API (training/fastpredict.py, uplift.py)",
     ("training/fastpredict.py", "training/uplift.py", "lightgbm/")),
    ("state store: launch holds (reserve/release, SQLAlchemy Core)",
     ("hold_launch_units", "release_holds", "Launches.reserve", "Launches.release")),
    ("state store: decision read (one statement)",
     ("HotPath.decision_state", "Database.decision_state", "LiveState.read")),
    ("state store: decision-log write (one transaction)",
     ("HotPath.record_decisions", "DecisionLog.record")),
    ("log record: candidates and feature row for the log", ("log_record",)),
    ("arbitration: eligibility, stock, caps, ranking", ("decisioning/",)),
    ("JSON: response body and request parsing", ("json/", "decision_json", "parse_json",
                                                 "pydantic", "jsonify")),
    ("logging and metrics", ("logging/", "prometheus_client", "service/observability.py")),
    ("Flask + Werkzeug (routing, request and response objects)", ("flask/", "werkzeug/")),
    ("gunicorn: HTTP parsing, socket reads and writes, close",
     ("gunicorn/",)),
)
OTHER = "other"


def worker_pids(master_pid: int) -> list[int]:
    """Child processes of a gunicorn master (its workers), from /proc."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children")
    try:
        return [int(pid) for pid in children.read_text().split()]
    except OSError:
        return []


def classify(stack: Sequence[str]) -> str:
    """The layer of a stack (outermost frame first): its innermost frame in a known layer."""
    for frame in reversed(stack):
        for layer, needles in LAYERS:
            if any(needle in frame for needle in needles):
                return layer
    return OTHER


def sample(pids: Sequence[int], seconds: float, rate: int = 200) -> Counter[str] | None:
    """py-spy samples of every pid for `seconds`, counted by layer; None without py-spy."""
    spy = shutil.which("py-spy") or _venv_tool("py-spy")
    if spy is None or not pids:
        return None
    with tempfile.TemporaryDirectory(prefix="nba-pyspy-") as tmp:
        outputs = [Path(tmp) / f"{pid}.txt" for pid in pids]

        def record(pid: int, out: Path) -> int:
            argv = [spy, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
                    "--rate", str(rate), "--format", "raw", "--nonblocking", "--output",
                    str(out)]
            return subprocess.run(argv, capture_output=True, check=False).returncode

        with ThreadPoolExecutor(len(pids)) as pool:
            codes = list(pool.map(record, pids, outputs))
        if any(code != 0 for code in codes):
            return None
        layers: Counter[str] = Counter()
        for out in outputs:
            for line in out.read_text().splitlines():
                stack, _, count = line.rpartition(" ")
                if stack and count.isdigit():
                    layers[classify(stack.split(";"))] += int(count)
    return layers


def _venv_tool(name: str) -> str | None:
    import sys

    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else None
