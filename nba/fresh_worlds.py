"""FRESH: five synthetic retailers written blind to the method, to check it once more.

The held-out worlds (`nba.worlds.HELD_OUT`) have been looked at in every round of issue 12, so
they no longer check anything. These differ from DESIGNS and HELD_OUT in kind, not only in
constants: their own customers (correlated, skewed RFM-like features; 10+ features of which
most are irrelevant; a 12-level categorical; a bool), their own base conversion (2% to 30%),
effects taken from causalml's generators (`make_uplift_classification_logistic`, which returns
each row's true effect per treatment, and `synthetic_data` mode 4, which returns each row's tau,
expected outcome and propensity), a world with no heterogeneity, one where no offer pays for
most customers, and logging that depends on a feature. Written and checked from the truth alone
(oracle, best single offer, nobody) before any policy was trained on them; never to be tuned on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
from causalml.dataset import make_uplift_classification_logistic, synthetic_data
from scipy.special import expit

from features.schema import Kind
from nba.worlds import Design

REGIONS = np.array([f"r{k:02d}" for k in range(12)], dtype=object)
#: Zipf-like region sizes: a few big regions, a long tail
REGION_SHARE = (1.0 / np.arange(1, 13)) / (1.0 / np.arange(1, 13)).sum()


@contextmanager
def _legacy_seed(rng: np.random.Generator) -> Iterator[None]:
    """causalml draws from numpy's global state: seed it from `rng`, restore it afterwards."""
    state = np.random.get_state()
    np.random.seed(int(rng.integers(2**31 - 1)))
    try:
        yield
    finally:
        np.random.set_state(state)


# --- rfm_regions: correlated, skewed RFM features, 12 regions, logging by frequency -----------

RFM: tuple[tuple[str, Kind], ...] = (
    ("recency_days", "numeric"), ("frequency", "numeric"), ("monetary", "numeric"),
    ("tenure_years", "numeric"), ("app_user", "bool"), ("region", "categorical"))


def _rfm_customers(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """A latent engagement drives frequency up, recency down and basket size up (correlated,
    skewed); tenure is gamma; regions are Zipf-sized."""
    z = rng.standard_normal(n)
    return pd.DataFrame({
        "recency_days": np.round(rng.exponential(60.0 * np.exp(-0.5 * z)), 0),
        "frequency": rng.poisson(np.exp(0.8 + 0.6 * z)) + 1.0,
        "monetary": np.round(rng.lognormal(3.8 + 0.3 * z, 0.6), 2),
        "tenure_years": np.round(rng.gamma(2.0, 1.5, n), 2),
        "app_user": rng.random(n) < expit(z - 0.3),
        "region": REGIONS[rng.choice(12, n, p=REGION_SHARE)]})


def _rfm_base(f: pd.DataFrame) -> np.ndarray:
    return 0.02 + 0.28 * expit(1.5 * (np.log(f["frequency"].to_numpy()) - 1.5)
                               - f["recency_days"].to_numpy() / 90.0)


def _rfm_uplift(f: pd.DataFrame) -> np.ndarray:
    """Win-back pays for the lapsed, premium for big baskets, a local event in 3 regions, free
    shipping for app users, a discount that cannibalises loyal buyers, points for tenure."""
    recency, frequency = f["recency_days"].to_numpy(), f["frequency"].to_numpy()
    basket = np.clip((np.log(f["monetary"].to_numpy()) - 4.0) / 1.0, 0.0, 1.0)
    local = f["region"].isin(["r03", "r07", "r10"]).to_numpy()
    app = f["app_user"].to_numpy().astype(float)
    return np.column_stack([0.005 + 0.06 * (recency > 120), 0.05 * basket, 0.04 * local,
                            0.03 + 0.03 * app, 0.025 - 0.04 * (frequency > 6),
                            0.01 + 0.02 * (f["tenure_years"].to_numpy() > 3.0)])


def _rfm_logging(f: pd.DataFrame, n_offers: int) -> np.ndarray:
    """Frequent buyers (more than 3 orders) see control half as often and premium twice."""
    frequent = f["frequency"].to_numpy() > 3
    weights = np.ones((len(f), n_offers + 1))
    weights[:, 0] = np.where(frequent, 0.5, 1.0)
    weights[:, 2] = np.where(frequent, 2.0, 1.0)
    return weights / weights.sum(axis=1, keepdims=True)


# --- library_logistic: causalml's make_uplift_classification_logistic -----------------------

TREATMENTS = ("treatment1", "treatment2", "treatment3", "treatment4", "treatment5")
_LOGISTIC: dict[str, object] = {"n_classification_features": 12, "n_classification_informative": 3,
             "n_classification_redundant": 1, "n_classification_repeated": 0,
             "n_uplift_dict": dict(zip(TREATMENTS, (1, 2, 1, 2, 1), strict=True)),
             "n_mix_informative_uplift_dict": dict(zip(TREATMENTS, (1, 0, 1, 0, 0),
                                                       strict=True)),
             "delta_uplift_dict": dict(zip(TREATMENTS, (0.03, 0.02, 0.01, -0.01, 0.015),
                                           strict=True)),
             "positive_class_proportion": 0.08, "random_select_association": False}


#: the library names its features by role and by randomly drawn parents (a redundant feature's
#: name lists them), so they are renamed by position: 12 classification features (3 informative,
#: 1 redundant, 8 irrelevant), 7 uplift features, 2 mixes
LOGISTIC_COLUMNS: tuple[tuple[str, Kind], ...] = tuple((f"z{k:02d}", "numeric")
                                                       for k in range(21))


def _logistic_customers(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """The library's features with its per-row truth hidden: the control conversion probability
    and each treatment's true effect (a difference of probabilities, so always valid)."""
    state = np.random.get_state()  # the library seeds numpy's global state
    try:
        frame, names = make_uplift_classification_logistic(
            n_samples=-(-n // (len(TREATMENTS) + 1)), treatment_name=["control", *TREATMENTS],
            random_seed=int(rng.integers(2**31 - 1)), **_LOGISTIC)
    finally:
        np.random.set_state(state)
    if len(names) != len(LOGISTIC_COLUMNS):
        raise ValueError(f"causalml returned {len(names)} features, expected "
                         f"{len(LOGISTIC_COLUMNS)}")
    frame = frame.iloc[:n].reset_index(drop=True)
    truth = {"_base": frame["control_conversion_prob"]}
    truth |= {f"_effect{k}": frame[f"{t}_true_effect"] for k, t in enumerate(TREATMENTS)}
    visible = frame[names].set_axis([c for c, _ in LOGISTIC_COLUMNS], axis=1)
    return visible.assign(**truth)


def _hidden_base(f: pd.DataFrame) -> np.ndarray:
    return f["_base"].to_numpy()


def _logistic_uplift(f: pd.DataFrame) -> np.ndarray:
    return np.column_stack([f[f"_effect{k}"].to_numpy() for k in range(len(TREATMENTS))])


# --- mostly_nobody: 14 features, 8 costly offers, two narrow niches --------------------------

STORES = np.array([f"s{k:02d}" for k in range(12)], dtype=object)
NOBODY: tuple[tuple[str, Kind], ...] = (
    *((f"v{k}", "numeric") for k in range(10)), ("spend", "numeric"), ("visits", "numeric"),
    ("member", "bool"), ("store", "categorical"))


def _nobody_customers(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Ten normals sharing a common factor (correlation 0.36), lognormal spend, negative-binomial
    visits correlated with spend, a bool and 12 uniform stores."""
    common = rng.standard_normal(n)
    v = 0.6 * common[:, None] + 0.8 * rng.standard_normal((n, 10))
    spend = rng.lognormal(4.0 + 0.4 * common, 0.8)
    return pd.DataFrame({
        **{f"v{k}": v[:, k] for k in range(10)}, "spend": np.round(spend, 2),
        "visits": rng.negative_binomial(2, 1.0 / (1.0 + spend / 60.0)).astype(float),
        "member": rng.random(n) < 0.3, "store": STORES[rng.integers(0, 12, n)]})


def _nobody_base(f: pd.DataFrame) -> np.ndarray:
    return 0.02 + 0.03 * expit(f["v0"].to_numpy())


def _nobody_uplift(f: pd.DataFrame) -> np.ndarray:
    """Small effects everywhere (no offer pays its cost on average); offer 3 pays in two stores
    for above-median spend, offer 6 where v1 is high (about 7%)."""
    n = len(f)
    effects = np.tile([0.006, 0.008, 0.005, 0.005, 0.010, 0.007, 0.004, 0.009], (n, 1))
    niche = f["store"].isin(["s05", "s11"]).to_numpy() & (f["spend"].to_numpy() > 55.0)
    effects[:, 3] += 0.08 * niche
    effects[:, 6] += 0.06 * (f["v1"].to_numpy() > 1.5)
    return effects


# --- flat_skewed: no heterogeneity, skewed features, a baseline from 4% to 30% ----------------

CHANNELS = np.array([f"ch{k:02d}" for k in range(12)], dtype=object)
FLAT: tuple[tuple[str, Kind], ...] = (
    ("income", "numeric"), ("spend", "numeric"), ("age", "numeric"), ("visits", "numeric"),
    *((f"n{k}", "numeric") for k in range(6)), ("source", "categorical"))


def _flat_customers(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Lognormal income and spend (correlated), age, visits, six noise columns, 12 sources."""
    z = rng.standard_normal(n)
    income = rng.lognormal(10.5 + 0.4 * z, 0.5)
    return pd.DataFrame({
        "income": np.round(income, 0), "spend": np.round(rng.lognormal(3.5 + 0.5 * z, 0.7), 2),
        "age": np.clip(np.round(rng.normal(42 + 5 * z, 12)), 18, 90),
        "visits": rng.poisson(np.exp(1.0 + 0.4 * z)).astype(float),
        **{f"n{k}": rng.standard_normal(n) for k in range(6)},
        "source": CHANNELS[rng.choice(12, n, p=REGION_SHARE)]})


def _flat_base(f: pd.DataFrame) -> np.ndarray:
    return 0.04 + 0.26 * expit(np.log1p(f["visits"].to_numpy()) * 1.5
                               + (np.log(f["spend"].to_numpy()) - 3.5) - 2.5)


def _flat_uplift(f: pd.DataFrame) -> np.ndarray:
    return np.tile([0.010, 0.022, 0.015, 0.030, 0.008], (len(f), 1))


def _flat_logging(f: pd.DataFrame, n_offers: int) -> np.ndarray:
    """Low-income customers (below 30,000) see control twice as often and offer 0 three times."""
    low = f["income"].to_numpy() < 30_000
    weights = np.ones((len(f), n_offers + 1))
    weights[:, 0] = np.where(low, 2.0, 1.0)
    weights[:, 1] = np.where(low, 3.0, 1.0)
    return weights / weights.sum(axis=1, keepdims=True)


# --- library_trial: causalml synthetic_data mode 4 (tau, baseline and propensity) ------------

TRIAL: tuple[tuple[str, Kind], ...] = tuple((f"w{k}", "numeric") for k in range(10))


def _trial_customers(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Mode 4 ("unrelated treatment and control", Nie and Wager setup D) on 10 normal
    covariates, 5 of them unused: its tau, expected outcome and propensity kept hidden (the
    propensity shifted up by `adj=-1`, about half treated, so each offer gets ~2,000 rows)."""
    with _legacy_seed(rng):
        _, X, _, tau, b, e = synthetic_data(mode=4, n=n, p=10, adj=-1.0)
    return pd.DataFrame({f"w{k}": X[:, k] for k in range(10)}).assign(_tau=tau, _b=b, _e=e)


def _trial_base(f: pd.DataFrame) -> np.ndarray:
    return 0.03 + 0.27 * expit(2.0 * (f["_b"].to_numpy() - 1.2))


def _trial_uplift(f: pd.DataFrame) -> np.ndarray:
    """Offer 0 follows tau (hurting where it is negative), offer 1 a damped tau, offer 2 flat."""
    tau = np.clip(f["_tau"].to_numpy(), -2.0, 3.0)
    return np.column_stack([0.012 * tau, 0.015 + 0.006 * tau, np.full(len(f), 0.012)])


def _trial_logging(f: pd.DataFrame, n_offers: int) -> np.ndarray:
    """The library's propensity, clipped to [0.15, 0.85], is the chance of any offer, split
    evenly among the offers."""
    treated = np.clip(f["_e"].to_numpy(), 0.15, 0.85)
    return np.column_stack([1.0 - treated, *([treated / n_offers] * n_offers)])


#: new worlds written blind to the method, run once (`bench/worlds.py --fresh`); never chosen on
FRESH = {d.name: d for d in (
    Design("rfm_regions", (25.0, 60.0, 20.0, 15.0, 10.0, 20.0), (0.5, 2.0, 0.2, 0.6, 0.1, 0.3),
           _rfm_uplift, _rfm_logging, rows_per_arm=1_500, customers=_rfm_customers,
           columns=RFM, base=_rfm_base),
    Design("library_logistic", (20.0, 30.0, 15.0, 25.0, 40.0), (0.3, 0.6, 0.1, 0.2, 0.8),
           _logistic_uplift, customers=_logistic_customers, columns=LOGISTIC_COLUMNS,
           base=_hidden_base),
    Design("mostly_nobody", (20.0, 25.0, 30.0, 30.0, 20.0, 25.0, 35.0, 40.0),
           (0.5, 0.6, 0.8, 1.0, 0.6, 0.7, 1.2, 1.5), _nobody_uplift, rows_per_arm=1_000,
           customers=_nobody_customers, columns=NOBODY, base=_nobody_base),
    Design("flat_skewed", (25.0, 20.0, 30.0, 12.0, 50.0), (0.2, 0.3, 0.4, 0.1, 0.3),
           _flat_uplift, _flat_logging, rows_per_arm=2_500, customers=_flat_customers,
           columns=FLAT, base=_flat_base),
    Design("library_trial", (30.0, 20.0, 15.0), (0.4, 0.2, 0.1), _trial_uplift, _trial_logging,
           rows_per_arm=3_000, customers=_trial_customers, columns=TRIAL, base=_trial_base),
)}
