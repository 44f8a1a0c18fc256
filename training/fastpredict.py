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
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections.abc import Sequence

import lightgbm as lgb
import numpy as np
from lightgbm.basic import _LIB, LightGBMError

_PREDICT_NORMAL = 0  # C_API_PREDICT_NORMAL: probabilities for a binary objective
_DTYPE_FLOAT64 = 1  # C_API_DTYPE_FLOAT64
# What `Booster.predict(X, num_threads=1)` hands LightGBM; one row never benefits from threads.
_PARAMETERS = b"num_threads=1"

# Bound once: attribute lookups on the CDLL cost more than the call's own argument handling.
_init = _LIB.LGBM_BoosterPredictForMatSingleRowFastInit
_predict = _LIB.LGBM_BoosterPredictForMatSingleRowFast
_free = _LIB.LGBM_FastConfigFree


def _check(ret: int) -> None:
    """Raise LightGBM's last error message if a C API call failed."""
    if ret != 0:
        raise LightGBMError(_LIB.LGBM_GetLastError().decode("utf-8"))


def _num_iteration(booster: lgb.Booster) -> int:
    """The iteration limit `Booster.predict` uses by default (best iteration, <= 0: all)."""
    return int(booster.best_iteration)


class _ThreadConfigs:
    """One thread's FastConfigs (one per booster) and its input/output buffers."""

    def __init__(self, boosters: tuple[lgb.Booster, ...], num_feature: int, rows: int) -> None:
        # holding the boosters keeps them alive for as long as configs point into them
        self.boosters = boosters
        self.handles: list[ctypes.c_void_p] = []
        self._free = _free  # module globals may already be gone when __del__ runs at exit
        try:
            for booster in boosters:
                handle = ctypes.c_void_p()
                _check(_init(booster._handle, ctypes.c_int(_PREDICT_NORMAL), ctypes.c_int(0),
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
            per_row = ctypes.c_int64(0)
            _check(_LIB.LGBM_BoosterCalcNumPredict(
                booster._handle, ctypes.c_int(1), ctypes.c_int(_PREDICT_NORMAL), ctypes.c_int(0),
                ctypes.c_int(_num_iteration(booster)), ctypes.byref(per_row)))
            if per_row.value != 1:
                raise ValueError(f"only one output per row is supported, got {per_row.value} "
                                 "(multiclass?)")
        self._local = threading.local()

    def __reduce__(self) -> tuple:
        # the per-thread configs are native handles: rebuild them lazily after a copy or pickle
        return (type(self), (self.boosters,))

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
        configs = self._configs()
        rows, row_ptrs, out_len_ref = configs.rows, configs.row_ptrs, configs.out_len_ref
        n, step = X.shape[0], self.chunk_rows
        scores = np.empty((n, len(configs.calls)), dtype=np.float64)
        for start in range(0, n, step):
            m = min(step, n - start)
            rows[:m] = X[start:start + m]
            # booster-major: each booster's trees stay in cache across the chunk's rows
            for handle, slots in configs.calls:
                for i in range(m):
                    if _predict(handle, row_ptrs[i], out_len_ref, slots[i]):
                        _check(-1)
            scores[start:start + m] = configs.out[:, :m].T
        return scores
