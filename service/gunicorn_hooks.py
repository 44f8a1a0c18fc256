"""gunicorn-side bookkeeping for multiprocess metrics; called from gunicorn.conf.py.

prometheus_client picks its multiprocess mode when it is first imported, from
PROMETHEUS_MULTIPROC_DIR, so this module must not import it at import time: the master sets
the variable (`prepare_multiprocess_dir`, while gunicorn reads its config, before any fork and
before a preloaded app could import the library) and the workers inherit it.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: set in the environment when the directory is a temporary one made by a master
TEMP_MARKER = "NBA_METRICS_TEMP_DIR"

# per master pid: gunicorn re-reads its config on HUP, and that must not wipe live counters
_prepared: dict[int, tuple[Path, bool]] = {}


def prepare_multiprocess_dir() -> Path:
    """Create or empty the metrics directory once per master and export PROMETHEUS_MULTIPROC_DIR.

    NBA_METRICS_DIR, else a PROMETHEUS_MULTIPROC_DIR set by the operator, is emptied of its
    metric files (*.db; nothing else is deleted); otherwise a fresh temporary directory is made
    for this master (also when the variable was inherited from another master's temporary
    directory, e.g. a USR2 upgrade: the old master's workers still write there). Returns the
    directory. Raises RuntimeError if prometheus_client was already imported in single-process
    mode, since the workers would then inherit it and count alone.
    """
    pid = os.getpid()
    if pid in _prepared:
        return _prepared[pid][0]
    values = sys.modules.get("prometheus_client.values")
    if values is not None and not getattr(values.ValueClass, "_multiprocess", True):
        raise RuntimeError("prometheus_client was imported before the metrics directory was "
                           "set; call prepare_multiprocess_dir first in gunicorn.conf.py")
    given = os.environ.get("NBA_METRICS_DIR") or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    inherited_temp = given is not None and given == os.environ.get(TEMP_MARKER)
    if given and not inherited_temp:
        path, temporary = Path(given), False
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):  # a previous run's counters would be summed in
            stale.unlink()
    else:
        path, temporary = Path(tempfile.mkdtemp(prefix="nba-metrics-")), True
        os.environ[TEMP_MARKER] = str(path)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    _prepared[pid] = (path, temporary)
    log.info("multiprocess metrics in %s", path)
    return path


def child_exit(server: Any, worker: Any) -> None:
    """In the master, after a worker exited: drop its live gauges (its counters stay summed)."""
    from prometheus_client import multiprocess

    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        multiprocess.mark_process_dead(worker.pid, path)


def remove_multiprocess_dir() -> None:
    """On the master's exit: delete the directory if this master made it as a temporary one."""
    path, temporary = _prepared.pop(os.getpid(), (None, False))
    if path is not None and temporary:
        shutil.rmtree(path, ignore_errors=True)
