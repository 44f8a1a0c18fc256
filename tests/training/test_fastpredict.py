"""The single-row C API path returns exactly what Booster.predict does, from any thread or fork."""

from __future__ import annotations

import copy
import ctypes
import gc
import os
import select
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from training import fastpredict
from training.fastpredict import SingleRowPredictor
from training.uplift import FAST_MAX_ROWS, UpliftModel, with_treatment_flag

N_FEATURES = 6
EXACT = {"rtol": 1e-12, "atol": 0}


def features(rng: np.random.Generator, n: int) -> np.ndarray:
    """Rows with NaNs (missing), exact zeros (LightGBM drops them from the row) and negatives."""
    X = rng.normal(size=(n, N_FEATURES))
    X[rng.random(X.shape) < 0.15] = np.nan
    X[rng.random(X.shape) < 0.1] = 0.0
    X[:, 5] = rng.integers(0, 4, n)  # a low-cardinality column
    return X


def train(rng: np.random.Generator, X: np.ndarray, *, rounds: int = 25,
          early_stopping: bool = False) -> lgb.Booster:
    """A small binary booster whose splits depend on missingness as well as on values."""
    signal_ = np.nan_to_num(X[:, 0], nan=1.5) + np.isnan(X[:, 1]) - 0.5 * X[:, -1]
    y = (rng.random(len(X)) < 1 / (1 + np.exp(-signal_))).astype(int)
    params = {"objective": "binary", "num_leaves": 7, "min_data_in_leaf": 10, "verbose": -1,
              "num_threads": 1, "seed": int(rng.integers(1 << 30))}
    if not early_stopping:
        return lgb.train(params, lgb.Dataset(X, y), num_boost_round=rounds)
    half = len(X) // 2
    train_set = lgb.Dataset(X[:half], y[:half])
    valid = lgb.Dataset(X[half:], 1 - y[half:], reference=train_set)  # stops early for sure
    return lgb.train(params, train_set, num_boost_round=rounds, valid_sets=[valid],
                     keep_training_booster=True,  # keeps the trees past the best iteration
                     callbacks=[lgb.early_stopping(3, verbose=False)])


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(20)


@pytest.fixture(scope="module")
def boosters(rng) -> tuple[lgb.Booster, ...]:
    """Three boosters on the same features; the last stopped early (best_iteration is used)."""
    X = features(rng, 1_500)
    stopped = train(rng, X, rounds=40, early_stopping=True)
    assert 0 < stopped.best_iteration < stopped.current_iteration()
    return train(rng, X), train(rng, X, rounds=10), stopped


def expected(boosters, X: np.ndarray) -> np.ndarray:
    return np.column_stack([b.predict(X, num_threads=1) for b in boosters])


@pytest.mark.parametrize("n", [1, 2, 3, 8, 9, 20])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_equals_booster_predict(boosters, rng, n, dtype):
    X = features(rng, n).astype(dtype)
    np.testing.assert_allclose(SingleRowPredictor(boosters).predict(X),
                               expected(boosters, X), **EXACT)


def test_all_missing_row_and_integer_input(boosters):
    predictor = SingleRowPredictor(boosters)
    missing = np.full((1, N_FEATURES), np.nan)
    np.testing.assert_allclose(predictor.predict(missing), expected(boosters, missing), **EXACT)
    ints = np.arange(2 * N_FEATURES).reshape(2, N_FEATURES)  # Booster.predict casts to float32
    np.testing.assert_allclose(predictor.predict(ints), expected(boosters, ints), **EXACT)
    assert predictor.predict(np.empty((0, N_FEATURES))).shape == (0, len(boosters))


def test_rejects_what_it_cannot_score(boosters, rng):
    predictor = SingleRowPredictor(boosters)
    with pytest.raises(ValueError, match="features"):
        predictor.predict(np.zeros((1, N_FEATURES + 1)))
    with pytest.raises(ValueError, match="features"):
        predictor.predict(np.zeros(N_FEATURES))
    with pytest.raises(ValueError, match="at least one"):
        SingleRowPredictor([])
    other = train(rng, features(rng, 300)[:, :3], rounds=2)
    with pytest.raises(ValueError, match="different numbers of features"):
        SingleRowPredictor([boosters[0], other])
    X = features(rng, 300)
    multiclass = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1,
                            "num_threads": 1},
                           lgb.Dataset(X, rng.integers(0, 3, 300)), num_boost_round=2)
    with pytest.raises(ValueError, match="one output per row"):
        SingleRowPredictor([multiclass])


def test_threads_score_concurrently_and_correctly(boosters, rng):
    predictor = SingleRowPredictor(boosters)
    X = features(rng, 64)
    want = expected(boosters, X)

    def score(offset: int) -> np.ndarray:
        return np.vstack([predictor.predict(X[i:i + 1]) for _ in range(20)
                          for i in np.roll(np.arange(len(X)), offset)])

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(score, range(0, 64, 8)))
    for offset, got in zip(range(0, 64, 8), results, strict=True):
        np.testing.assert_allclose(got, np.tile(np.roll(want, offset, axis=0), (20, 1)), **EXACT)


def test_configs_are_per_thread_and_freed_with_the_predictor(boosters, rng, monkeypatch) -> None:
    freed: list[int] = []
    real_free = fastpredict._free
    assert real_free is not None

    def counting_free(handle: ctypes.c_void_p) -> int:
        freed.append(1)
        return real_free(handle)

    monkeypatch.setattr(fastpredict, "_free", counting_free)
    predictor = SingleRowPredictor(boosters)
    X = features(rng, 1)
    predictor.predict(X)
    worker = threading.Thread(target=predictor.predict, args=(X,))
    worker.start()
    worker.join()
    assert len(freed) == len(boosters)  # the finished thread's configs went with it
    del predictor
    gc.collect()
    assert len(freed) == 2 * len(boosters)


def test_copies_rebuild_their_configs(boosters, rng):
    X = features(rng, 2)
    predictor = SingleRowPredictor(boosters)
    predictor.predict(X)
    clone = copy.deepcopy(predictor)
    assert clone.boosters[0] is not boosters[0]
    # (a deep-copied Booster forgets best_iteration, so compare with the copies themselves)
    np.testing.assert_allclose(clone.predict(X), expected(clone.boosters, X), **EXACT)


def _in_child(work) -> bytes:
    """Run `work` in a forked child and return the bytes it produced (10 s deadline)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            os.close(read_end)
            os.write(write_end, work())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    chunks, deadline = [], time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            if select.select([read_end], [], [], 0.1)[0]:
                chunk = os.read(read_end, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
        else:
            os.kill(pid, signal.SIGKILL)
            pytest.fail("forked child did not finish")
    finally:
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return b"".join(chunks)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_scores_with_inherited_and_new_configs(boosters, rng):
    predictor = SingleRowPredictor(boosters)
    X = features(rng, 4)
    predictor.predict(X)  # this thread's configs exist before the fork

    def work() -> bytes:
        inherited = predictor.predict(X)
        fresh: list[np.ndarray] = []
        thread = threading.Thread(target=lambda: fresh.append(predictor.predict(X)))
        thread.start()
        thread.join()
        return np.vstack([inherited, fresh[0]]).tobytes()

    got = np.frombuffer(_in_child(work)).reshape(2 * len(X), len(boosters))
    want = expected(boosters, X)
    np.testing.assert_allclose(got, np.vstack([want, want]), **EXACT)


@pytest.fixture(scope="module")
def uplift_models(rng) -> dict[str, UpliftModel]:
    """An S- and a T-learner over three offers, built from boosters as fit_uplift does."""
    X = features(rng, 1_200)
    s_boosters = tuple(train(rng, with_treatment_flag(X)[::2]) for _ in range(3))
    t_boosters = tuple(train(rng, X) for _ in range(4))
    offers = ("a", "b", "c")
    return {"s": UpliftModel(offers, None, s_boosters, "s"),
            "t": UpliftModel(offers, t_boosters[0], t_boosters[1:], "t")}


@pytest.mark.parametrize("kind", ["s", "t"])
def test_uplift_model_few_rows_equal_the_batch_path(uplift_models, rng, kind):
    model = uplift_models[kind]
    X = features(rng, 40)  # > FAST_MAX_ROWS: Booster.predict
    uplift, p_treated = model.predict(X)
    for n in (1, 2, FAST_MAX_ROWS // 2):
        few_uplift, few_treated = model.predict(X[:n])
        np.testing.assert_allclose(few_uplift, uplift[:n], **EXACT)
        np.testing.assert_allclose(few_treated, p_treated[:n], **EXACT)
        assert few_treated.flags.c_contiguous and few_uplift.shape == (n, 3)
    assert model._fast is not None  # the fast path was taken
    assert "_fast" not in repr(model)


@pytest.mark.parametrize("kind", ["s", "t"])
def test_uplift_model_fast_path_from_threads(uplift_models, rng, kind):
    model = uplift_models[kind]
    model = UpliftModel(model.offer_ids, model.control, model.treated, model.kind)  # fresh: lazy
    X = features(rng, 16)
    want = model.predict(X)[0]
    with ThreadPoolExecutor(4) as pool:
        rows = list(pool.map(lambda i: model.predict(X[i:i + 1])[0][0], range(len(X))))
    np.testing.assert_allclose(np.vstack(rows), want, **EXACT)


# ---------------------------------------------------------------- degrading, never breaking


@pytest.fixture
def fresh_warning(monkeypatch):
    """The once-per-process warning not yet given."""
    monkeypatch.setattr(fastpredict, "_warned", False)


def fallback_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "training.fastpredict" and r.levelname == "WARNING"]


def refuse(*args):
    raise ctypes.ArgumentError("argument 1: wrong type")


def write_nothing(*args):
    return 0  # "success", but no score written: the check row disagrees


@pytest.mark.parametrize(("target", "value", "why"), [
    ("_init", None, "lacks SingleRowFastInit"),  # a LightGBM without the symbol
    ("_LIB", None, "lacks lightgbm.basic._LIB"),
    ("_init", refuse, "C API failed (ArgumentError"),  # a changed signature
    ("_predict", write_nothing, "disagrees with Booster.predict"),
])
def test_missing_or_different_internals_fall_back_to_booster_predict_with_one_warning(
        boosters, rng, monkeypatch, caplog, fresh_warning, target, value, why):
    monkeypatch.setattr(fastpredict, target, value)
    X = features(rng, 5)
    first = SingleRowPredictor(boosters)
    assert not first.fast
    np.testing.assert_allclose(first.predict(X), expected(boosters, X), **EXACT)
    np.testing.assert_allclose(SingleRowPredictor(boosters).predict(X[:1]),
                               expected(boosters, X[:1]), **EXACT)
    assert first.predict(np.empty((0, N_FEATURES))).shape == (0, len(boosters))
    warnings = fallback_warnings(caplog)
    assert len(warnings) == 1 and why in warnings[0] and "Booster.predict" in warnings[0]


def test_an_untested_lightgbm_major_version_falls_back(boosters, rng, monkeypatch, caplog,
                                                        fresh_warning):
    monkeypatch.setattr(lgb, "__version__", "5.0.0")
    predictor = SingleRowPredictor(boosters)
    assert not predictor.fast
    X = features(rng, 2)
    np.testing.assert_allclose(predictor.predict(X), expected(boosters, X), **EXACT)
    assert "untested" in fallback_warnings(caplog)[0]


def test_uplift_models_score_alike_without_the_fast_path(uplift_models, rng, monkeypatch,
                                                         fresh_warning):
    X = features(rng, 3)
    for kind in ("s", "t"):
        model = uplift_models[kind]
        want = UpliftModel(model.offer_ids, model.control, model.treated, kind).predict(X)
        monkeypatch.setattr(fastpredict, "_predict", None)
        slow = UpliftModel(model.offer_ids, model.control, model.treated, kind)
        got = slow.predict(X)
        monkeypatch.undo()
        assert slow._fast is not None and not slow._fast.fast
        np.testing.assert_allclose(got[0], want[0], **EXACT)
        np.testing.assert_allclose(got[1], want[1], **EXACT)


def test_the_service_imports_when_lightgbm_lacks_the_internals():
    script = ("import lightgbm.basic\n"
              "del lightgbm.basic._LIB\n"
              "from training import fastpredict\n"
              "assert fastpredict._init is None\n"
              "assert 'lacks' in fastpredict.fast_path_problem(())\n"
              "import service.api, service.model_store, training.uplift\n"
              "from service import create_app\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
