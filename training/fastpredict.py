"""Few-row LightGBM scoring through the C API's single-row "fast" path.

`lgb.Booster.predict` parses its parameters, builds a C++ Predictor and converts its input on
every call: ~25 µs of setup per booster even for one row, which dominates a one-customer request
scoring a dozen offers. LightGBM's `LGBM_BoosterPredictForMatSingleRowFast*` functions do that
setup once (a "FastConfig") and then cost little more than walking the trees. Batch scoring
stays on `Booster.predict`, which threads over large matrices.

Threads: a FastConfig serializes its callers with a mutex, and LightGBM recommends one per
thread (`SingleRowPredictor` in its 4.x `src/c_api.cpp`), so every thread lazily gets its own,
with its own buffers. ctypes releases the GIL during the call, so threads score in parallel.

Fork: no Python lock is ever taken, and the configs are plain process memory, so a forked
child keeps scoring with them (and builds new ones for new threads). Like `Booster.predict`,
LightGBM holds a C++ lock on the booster while it scores, so fork while no other thread is
scoring (gunicorn forks workers from its idle master).

Degrades, never breaks: the C functions come from LightGBM internals (`lightgbm.basic._LIB`,
`Booster._handle`). If a LightGBM release lacks them, is not the major version this was tested
on, or its fast path disagrees with `Booster.predict` on a check row, the predictor logs one
warning and scores with `Booster.predict` instead: slower, never wrong, and importing this
module never fails.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
from collections.abc import Sequence

import lightgbm as lgb
import lightgbm.basic
import numpy as np
from lightgbm.basic import LightGBMError

log = logging.getLogger(__name__)

_TESTED_MAJOR = "4"  # the LightGBM major version whose C API signatures this module uses
_PREDICT_NORMAL = 0  # C_API_PREDICT_NORMAL: probabilities for a binary objective
_DTYPE_FLOAT64 = 1  # C_API_DTYPE_FLOAT64
# What `Booster.predict(X, num_threads=1)` hands LightGBM; one row never benefits from threads.
_PARAMETERS = b"num_threads=1"

# Bound once: attribute lookups on the CDLL cost more than the call's own argument handling.
# None when this LightGBM does not have them (then every predictor uses Booster.predict).
_LIB = getattr(lightgbm.basic, "_LIB", None)
_init = getattr(_LIB, "LGBM_BoosterPredictForMatSingleRowFastInit", None)
_predict = getattr(_LIB, "LGBM_BoosterPredictForMatSingleRowFast", None)
_free = getattr(_LIB, "LGBM_FastConfigFree", None)
_last_error = getattr(_LIB, "LGBM_GetLastError", None)

#: errors that mean "this LightGBM's internals are not what this module expects"
_INTERNALS_DIFFER = (LightGBMError, AttributeError, TypeError, ValueError, ctypes.ArgumentError,
                     OSError)
_warned = False


def fast_path_problem(boosters: Sequence[lgb.Booster]) -> str | None:
    """Why the single-row C API cannot be used with these boosters here, or None if it can."""
    if not lgb.__version__.startswith(_TESTED_MAJOR + "."):
        return f"LightGBM {lgb.__version__} is untested (the fast path knows {_TESTED_MAJOR}.x)"
    missing = [name for name, fn in (("lightgbm.basic._LIB", _LIB), ("SingleRowFastInit", _init),
                                      ("SingleRowFast", _predict), ("FastConfigFree", _free),
                                      ("GetLastError", _last_error)) if fn is None]
    if missing:
        return f"LightGBM {lgb.__version__} lacks {', '.join(missing)}"
    if any(not hasattr(booster, "_handle") for booster in boosters):
        return f"LightGBM {lgb.__version__}'s Booster has no _handle"
    return None


def _warn_once(problem: str) -> None:
    """One warning per process: the fast path is off, Booster.predict scores instead."""
    global _warned
    if not _warned:
        _warned = True
        log.warning("single-row fast scoring is off, using Booster.predict (slower, same "
                    "numbers): %s", problem)


def _check(ret: int) -> None:
    """Raise LightGBM's last error message if a C API call failed."""
    if ret != 0:
        assert _last_error is not None  # a fast-path call never runs without it
        raise LightGBMError(_last_error().decode("utf-8"))


def _num_iteration(booster: lgb.Booster) -> int:
    """The iteration limit `Booster.predict` uses by default (best iteration, <= 0: all)."""
    return int(booster.best_iteration)


class _ThreadConfigs:
    """One thread's FastConfigs (one per booster) and its input/output buffers."""

    def __init__(self, boosters: tuple[lgb.Booster, ...], num_feature: int, rows: int) -> None:
        # holding the boosters keeps them alive for as long as configs point into them
        self.boosters = boosters
        self.handles: list[ctypes.c_void_p] = []
        init, free = _init, _free
        assert init is not None and free is not None  # fast_path_problem checked them
        self._free = free  # module globals may already be gone when __del__ runs at exit
        try:
            for booster in boosters:
                handle = ctypes.c_void_p()
                _check(init(booster._handle, ctypes.c_int(_PREDICT_NORMAL), ctypes.c_int(0),
                            ctypes.c_int(_num_iteration(booster)), ctypes.c_int(_DTYPE_FLOAT64),
                            ctypes.c_int32(num_feature), ctypes.c_char_p(_PARAMETERS),
                            ctypes.byref(handle)))
                self.handles.append(handle)
        except BaseException:
            self.close()
            raise
        # Pointers built once as ctypes objects: passing those costs far less per call than
        # converting addresses (ndarray.ctypes.data alone takes ~1 µs).
        self.rows = np.zeros((rows, num_feature), dtype=np.float64)
        self.row_ptrs = [ctypes.c_void_p(self.rows.ctypes.data + self.rows.strides[0] * i)
                         for i in range(rows)]
        self.out = np.zeros((len(boosters), rows), dtype=np.float64)  # booster-major
        self.calls = [(handle, [ctypes.c_void_p(self.out.ctypes.data + self.out.strides[0] * k
                                                + self.out.strides[1] * i) for i in range(rows)])
                      for k, handle in enumerate(self.handles)]
        self.out_len = ctypes.c_int64(0)
        self.out_len_ref = ctypes.byref(self.out_len)

    def close(self) -> None:
        """Free the configs (idempotent)."""
        while self.handles:
            self._free(self.handles.pop())

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # nothing sensible to do while being collected
            self.close()


class SingleRowPredictor:
    """`Booster.predict(X, num_threads=1)` for a few rows, for several boosters at once.

    The boosters must take the same number of features and give one value per row (binary or
    regression objectives). They must not be retrained or modified once this predictor has
    scored: a FastConfig snapshots the booster's trees, and LightGBM's predictors share the
    booster's iteration range (lightgbm-org/LightGBM#6142), so calling `Booster.predict` on
    the same boosters with a non-default `num_iteration` would change what this one returns.
    Where the fast path cannot be used (see the module docstring) it calls `Booster.predict`.
    """

    #: Rows per C-call batch; larger inputs are scored in chunks of this many rows.
    chunk_rows = 8

    def __init__(self, boosters: Sequence[lgb.Booster]) -> None:
        self.boosters = tuple(boosters)
        if not self.boosters:
            raise ValueError("SingleRowPredictor needs at least one booster")
        widths = {booster.num_feature() for booster in self.boosters}
        if len(widths) != 1:
            raise ValueError(f"boosters take different numbers of features: {sorted(widths)}")
        self.num_feature = widths.pop()
        for booster in self.boosters:
            per_row = booster.num_model_per_iteration()  # one per class for multiclass
            if per_row != 1:
                raise ValueError(f"only one output per row is supported, got {per_row} "
                                 "(multiclass?)")
        self._local = threading.local()
        problem = fast_path_problem(self.boosters) or self._check_fast_path()
        #: False: every call goes to Booster.predict (LightGBM's internals are not as expected)
        self.fast = problem is None
        if problem is not None:
            _warn_once(problem)

    def __reduce__(self) -> tuple:
        # the per-thread configs are native handles: rebuild them lazily after a copy or pickle
        return (type(self), (self.boosters,))

    def _check_fast_path(self) -> str | None:
        """Score one check row both ways: None when the fast path agrees with Booster.predict."""
        row = np.linspace(-1.0, 1.0, self.num_feature).reshape(1, -1)
        try:
            fast = self._predict_fast(row)
        except _INTERNALS_DIFFER as exc:
            return f"the single-row C API failed ({type(exc).__name__}: {exc})"
        if not np.array_equal(fast, self._predict_booster(row)):
            return "the single-row C API disagrees with Booster.predict on a check row"
        return None

    def _configs(self) -> _ThreadConfigs:
        """This thread's configs, created on its first call."""
        try:
            return self._local.configs
        except AttributeError:
            configs = _ThreadConfigs(self.boosters, self.num_feature, self.chunk_rows)
            self._local.configs = configs
            return configs

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Scores of shape (n_rows, n_boosters): column k equals boosters[k].predict(X).

        Meant for a handful of rows: there is no threading, and past ~10 rows `Booster.predict`
        is as fast. Raises ValueError if X is not 2-D with `num_feature` columns.
        """
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.num_feature:
            raise ValueError(f"expected rows of {self.num_feature} features, got shape {X.shape}")
        if X.dtype != np.float64 and X.dtype != np.float32:
            X = X.astype(np.float32)  # what Booster.predict does with other dtypes
        if self.fast:
            try:
                return self._predict_fast(X)
            except _INTERNALS_DIFFER as exc:  # e.g. a new thread's FastConfig was refused
                self.fast = False
                _warn_once(f"the single-row C API failed ({type(exc).__name__}: {exc})")
        return self._predict_booster(X)

    def _predict_booster(self, X: np.ndarray) -> np.ndarray:
        """The slow, public path: one Booster.predict call per booster."""
        if X.shape[0] == 0:
            return np.empty((0, len(self.boosters)), dtype=np.float64)
        return np.column_stack([booster.predict(X, num_threads=1) for booster in self.boosters])

    def _predict_fast(self, X: np.ndarray) -> np.ndarray:
        """Through this thread's FastConfigs, in chunks of `chunk_rows`."""
        configs = self._configs()
        predict_one = _predict
        assert predict_one is not None  # fast_path_problem checked it
        rows, row_ptrs, out_len_ref = configs.rows, configs.row_ptrs, configs.out_len_ref
        n, step = X.shape[0], self.chunk_rows
        scores = np.empty((n, len(configs.calls)), dtype=np.float64)
        for start in range(0, n, step):
            m = min(step, n - start)
            rows[:m] = X[start:start + m]
            # booster-major: each booster's trees stay in cache across the chunk's rows
            for handle, slots in configs.calls:
                for i in range(m):
                    if predict_one(handle, row_ptrs[i], out_len_ref, slots[i]):
                        _check(-1)
            scores[start:start + m] = configs.out[:, :m].T
        return scores
