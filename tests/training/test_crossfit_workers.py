"""Cross-fitting's fits run side by side (`crossfit_workers`) with the sequential path's results."""

from __future__ import annotations

import os
import threading
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from features.build import build_matrix
from training import crossfit
from training.settings import BoosterParams, TrainSettings


def test_workers_default_to_the_available_cores_and_fall_back_to_one(monkeypatch, tmp_path):
    no_quota = tmp_path / "absent"
    assert crossfit.available_workers(3) == 3
    assert crossfit.available_workers(0) == 1  # never below one
    assert crossfit.available_workers(cpu_max=no_quota) == min(len(os.sched_getaffinity(0)),
                                                               crossfit.MAX_AUTO_WORKERS)

    def missing(_pid: int) -> set[int]:
        raise AttributeError("no sched_getaffinity here")

    monkeypatch.setattr(os, "sched_getaffinity", missing)
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert crossfit.available_workers(cpu_max=no_quota) == 1


@pytest.mark.parametrize(("cpu_max", "cpus"), [
    ("max 100000\n", None),  # no quota
    ("150000 100000\n", 2),  # 1.5 CPUs: two fits side by side
    ("50000 100000\n", 1),
    ("garbage\n", None),
])
def test_auto_workers_keep_to_a_container_cpu_quota(monkeypatch, tmp_path, cpu_max, cpus):
    """The affinity mask ignores a container's quota; cgroup v2's cpu.max does not."""
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    assert crossfit.cgroup_cpus(path) == cpus
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(64)))
    assert crossfit.available_workers(cpu_max=path) == (cpus or crossfit.MAX_AUTO_WORKERS)
    assert crossfit.available_workers(64, cpu_max=path) == 64  # asked for: as asked


def test_one_worker_runs_the_jobs_in_this_thread_and_many_keep_their_order():
    here = threading.current_thread()
    assert crossfit.run_in_order([lambda: threading.current_thread()] * 3, 1) == [here] * 3
    # job 0 waits for job 1 to finish: job 1 ends first, yet the results keep the jobs' order
    one_done = threading.Event()

    def first() -> int:
        assert one_done.wait(timeout=10)
        return 0

    def second() -> int:
        one_done.set()
        return 1
    assert crossfit.run_in_order([first, second, lambda: 2], 2) == [0, 1, 2]


def test_side_by_side_fits_get_one_lightgbm_thread_each():
    assert crossfit.per_fit(BoosterParams(n_jobs=2), 2).n_jobs == 1
    assert crossfit.per_fit(BoosterParams(n_jobs=2), 1).n_jobs == 2


def test_a_failing_fit_raises_from_the_pool():
    def boom() -> int:
        raise ValueError("fold 1 failed")
    with pytest.raises(ValueError, match="fold 1 failed"):
        crossfit.run_in_order([lambda: 0, boom, lambda: 2], 2)


@pytest.fixture(scope="module")
def world():
    """A small 4-offer world (real LightGBM fits on it take seconds)."""
    from features.build import infer_spec
    from nba.worlds import DESIGNS, FEATURES, generate

    design = next(iter(DESIGNS.values()))
    data = generate(replace(design, rows_per_arm=300), 0)
    return data, infer_spec(data.exposures, FEATURES)


@pytest.fixture(scope="module")
def store_world():
    """A small store_events world: its 150 stores reach the model as one level-codes column
    (LightGBM's categorical splits), which the 4-offer world has none of."""
    from features.build import infer_spec
    from nba.unseen_worlds import UNSEEN
    from nba.worlds import generate

    design = UNSEEN["store_events"]
    data = generate(replace(design, rows_per_arm=400), 0)
    spec = infer_spec(data.exposures, list(design.columns))
    assert spec.categorical_columns, "no level-codes column: the case this world is here for"
    return data, spec


@pytest.mark.parametrize("fixture", ["world", "store_world"])
def test_side_by_side_fits_give_the_sequential_selection_exactly(fixture, request):
    from training.pipeline import STEPS, Progress, fit_chosen

    data, spec = request.getfixturevalue(fixture)
    settings = TrainSettings(params=BoosterParams(n_estimators=20, n_jobs=2),
                             learners=("s", "t", "x"), capacities=("low", "base"),
                             crossfit_workers=1)
    sequential_policy, sequential = fit_chosen(data.exposures, spec, data.catalog, settings,
                                               Progress(STEPS))
    parallel_policy, parallel = fit_chosen(data.exposures, spec, data.catalog,
                                           replace(settings, crossfit_workers=3),
                                           Progress(STEPS))
    pd.testing.assert_frame_equal(parallel.table, sequential.table, check_exact=True)
    assert parallel.chosen == sequential.chosen
    assert all(np.array_equal(parallel.arms[n], sequential.arms[n]) for n in sequential.arms)
    X = build_matrix(data.exposures, spec)
    assert np.array_equal(parallel_policy.uplift.predict(X)[0],
                          sequential_policy.uplift.predict(X)[0])


def test_side_by_side_out_of_fold_uplift_is_the_one_thread_sequential_one(world):
    data, spec = world
    frame = data.exposures
    X = build_matrix(frame, spec)
    args = (X, frame["treatment"].to_numpy(dtype=object), frame["converted"].to_numpy(),
            frame["propensity"].to_numpy(), crossfit.folds(frame["customer_id"].to_numpy(), 3, 0))
    learners = [("x", BoosterParams(n_estimators=20, num_leaves=3, n_jobs=2)),
                ("s", BoosterParams(n_estimators=20, n_jobs=2))]
    kwargs = {"offer_ids": data.catalog.offer_ids, "control_label": data.catalog.control_label,
              "seed": 5}
    parallel = crossfit.uplift_predictions_many(learners, *args, workers=2, **kwargs)
    for (kind, params), got in zip(learners, parallel, strict=True):
        for threads in (1, 2):  # LightGBM's thread count does not change its fits here
            alone = crossfit.uplift_predictions(kind, *args, params=replace(params,
                                                n_jobs=threads), **kwargs)
            np.testing.assert_array_equal(got.uplift, alone.uplift)
            np.testing.assert_array_equal(got.per_fold, alone.per_fold)
