"""Typed training settings, built by the entry point and passed down."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

#: The registry every entry point (training, the CLI, the service) uses unless told otherwise,
#: and the registered model's name: defined once, here (this module imports nothing heavy).
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_MODEL_NAME = "nba-policy"


@dataclass(frozen=True)
class BoosterParams:
    """LightGBM settings shared by every base learner; sized for tabular CRM data."""

    n_estimators: int = 150
    learning_rate: float = 0.05
    num_leaves: int = 15
    min_child_samples: int = 100
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    reg_lambda: float = 1.0
    n_jobs: int = 2
    #: cap min_child_samples at rows per arm / (leaves + 1) (`training.learners.fit_to_rows`)
    leaves_by_rows: bool = False
    #: LightGBM's randomised split thresholds (one random threshold per feature and node)
    extra_trees: bool = False
    #: LightGBM's shrinkage of a node's value towards its parent's, in rows (0: none)
    path_smooth: float = 0.0
    #: input columns LightGBM splits as native categoricals (level codes; `features.schema.
    #: FeatureSpec.categorical_columns`, shifted by a learner that puts columns in front)
    categorical: tuple[int, ...] = ()

    def shifted(self, columns: int) -> BoosterParams:
        """These settings for an input with `columns` more columns in front (the S-learner's
        treatment flag)."""
        return replace(self, categorical=tuple(i + columns for i in self.categorical))

    def as_lightgbm(self, seed: int) -> dict[str, Any]:
        """Keyword arguments for lightgbm.LGBMClassifier / LGBMRegressor (the opt-in
        regularisers only when set, so every other caller passes what it always did)."""
        extra: dict[str, Any] = {}
        if self.extra_trees:
            extra["extra_trees"] = True
        if self.path_smooth:
            extra["path_smooth"] = self.path_smooth
        if self.categorical:
            # a Dataset parameter, under the alias LightGBM's Dataset sets itself: the name
            # `categorical_feature` in params works the same but warns it is ignored (it is
            # not; lightgbm-org/LightGBM#2288 recommends an alias). causalml fits its learners
            # without fit arguments, so the estimator's params are the one way in
            extra["categorical_column"] = list(self.categorical)
        return extra | {
            "n_estimators": self.n_estimators,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "subsample": self.subsample,
            "subsample_freq": 1,
            "colsample_bytree": self.colsample_bytree,
            "reg_lambda": self.reg_lambda,
            "n_jobs": self.n_jobs,
            "random_state": seed,
            "verbose": -1,
        }


@dataclass(frozen=True)
class TrainSettings:
    """Where the data and the registry are, and how to fit."""

    data_dir: Path = Path("data")
    tracking_uri: str = DEFAULT_TRACKING_URI
    artifact_root: Path = Path("mlruns")
    model_name: str = DEFAULT_MODEL_NAME
    experiment: str = "nba-training"
    test_size: float = 0.3
    seed: int = 42
    params: BoosterParams = field(default_factory=BoosterParams)
    promote: bool = False
    #: the menu (training.select): meta-learners (training.learners.LEARNERS; "x", the best on
    #: the synthetic worlds at low capacity, fits about twice the models of "s"), LightGBM
    #: capacities (training.learners.CAPACITIES) and rules (training.rules.RULES); every
    #: combination is scored by cross-fitted DR value and the simplest within noise of the best
    #: is refit on all rows
    learners: tuple[str, ...] = ("s", "t", "x")
    capacities: tuple[str, ...] = ("low", "base")
    rules: tuple[str, ...] = ("best_single", "confident", "shrink_0.5", "full")
    #: K of the customer-grouped cross-fitting
    folds: int = 3
    #: cross-fitting's fits run this many at a time in threads, each with one LightGBM thread
    #: (training.crossfit.run_in_order); None: one per core this process may use
    #: (os.sched_getaffinity, lowered to a cgroup CPU quota; at most 8, as each fit holds a copy
    #: of its rows); 1: one after another with params.n_jobs threads each. The refit on all rows
    #: always uses params.n_jobs threads
    crossfit_workers: int | None = None
    #: selection scores candidates on at most max(select_rows, select_rows_per_arm x arms) rows
    #: (a sample of whole customers; `selection_cap`); the chosen candidate is then refit on
    #: every row
    select_rows: int = 25_000
    #: a DR value's variance grows with the arms at fixed rows (each row informs 1/arms of the
    #: offers, weighted by 1 / propensity), so the cap grows with them: 1,900 rows per arm is
    #: what 25,000 rows give the demo's 13 arms (unchanged there); the 32-offer world scores on
    #: all its 33,000 rows instead of 25,000 (docs/measurement.md)
    select_rows_per_arm: int = 1_900
    #: the choice: the simplest candidate within this many standard errors of the best paired
    #: DR value (0.0: the best by DR, ties to the simplest; 1.0: the one-standard-error rule,
    #: which kept the best single offer where targeting truly earned twice as much)
    tolerance: float = 0.0
    #: the nested check (training.select.nested_selection), always reported: with a z, a
    #: targeting choice is served only when "select, then serve", scored on folds its choice
    #: never saw, gains over the best single offer by more than z standard errors (0.0: a
    #: positive point estimate). None (the default) serves the choice: on the synthetic worlds
    #: z = 0 fixed one weak-signal seed and lost one on propensities by x1 and one held-out
    #: interaction seed, where the best single offer it fell back to was itself a wrong pick
    nested_z: float | None = None
    #: folds by customer of the nested check, drawn apart from the cross-fitting's: each
    #: fold's choice is made on the other (nested_folds - 1) / nested_folds of the rows, close
    #: to the full-data choice it stands for
    nested_folds: int = 10
    #: the contact guard (training.select.guard_contacts): a policy that spends contacts is
    #: served only when its cross-fitted DR value is above this many standard errors (sending
    #: nothing is worth exactly 0, with no noise); else the best single offer if its value is,
    #: else nobody. None: off. Measured on 16 worlds x 5 seeds (docs/measurement.md): 0.5
    #: never fired on the design and held-out worlds, and on the fresh ones stopped a policy
    #: whose DR value was +0.05 and true value -0.46; 1.0 already cost design worlds
    contact_z: float | None = 0.5
    #: a fixed shrinkage replaces the menu's rules by that one (1.0: full targeting)
    shrinkage: float | None = None

    def selection_cap(self, n_arms: int) -> int:
        """Rows selection may score on with `n_arms` arms (control included)."""
        return max(self.select_rows, self.select_rows_per_arm * n_arms)

    @property
    def menu_rules(self) -> tuple[str, ...]:
        """The rules to score: the configured ones, or the one fixed shrinkage."""
        return self.rules if self.shrinkage is None else (f"shrink_{self.shrinkage:g}",)
