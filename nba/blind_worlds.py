"""BLIND: four synthetic retailers written from descriptions alone, before any policy was trained
on them, to measure the pipeline as it stands (`bench/worlds.py --blind`); never to be tuned on.

`issue_retailer` is issue 12's own world as the issue describes it: 8 offers with margins and
contact costs, 60,000 randomized exposures (about 6,700 per arm), segment effects with sharp
thresholds, two offers that hurt some customers, one costly offer that pays only for a narrow
segment. The issue reports on it: the pipeline before the issue earned 32-49% of the oracle, the
best single offer 43%, a tuned S-learner ~61%, an X-learner given the logged propensities ~67%.
The other three differ in shape from every world of DESIGNS, HELD_OUT and FRESH: an effect
driven by spend's interaction with recency that the logging policy also targeted on, with four
exposures per customer and a per-customer latent propensity to buy (clustered outcomes); a
catalogue of 16 offers of which 3 matter, at a 2-3% base conversion; and bell-shaped (non
monotone) effects in age with 7,000 rows per arm.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

from features.schema import Kind
from nba.worlds import Design

# --- issue_retailer: issue 12's world, from its description ---------------------------------

TIERS = np.array(["bronze", "silver", "gold", "platinum"], dtype=object)
CATEGORIES = np.array(["apparel", "footwear", "beauty", "home", "kids", "accessories"],
                      dtype=object)
CHANNELS = np.array(["web", "app", "store"], dtype=object)
RETAIL: tuple[tuple[str, Kind], ...] = (
    ("recency_days", "numeric"), ("frequency", "numeric"), ("monetary", "numeric"),
    ("tenure_days", "numeric"), ("full_price_share", "numeric"), ("channel", "categorical"),
    ("loyalty_tier", "categorical"), ("favorite_category", "categorical"))


def _retail_customers(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """RFM-like customers; the loyalty tier cuts yearly spend at fixed amounts (about 40 / 30 /
    20 / 10% of customers)."""
    frequency = 1.0 + rng.poisson(3.0 * rng.gamma(2.0, 0.5, n))
    monetary = np.round(rng.lognormal(np.log(60.0), 0.5, n), 2)
    tier = np.searchsorted([170.0, 330.0, 560.0], frequency * monetary, side="right")
    return pd.DataFrame({
        "recency_days": np.minimum(365.0, np.ceil(rng.exponential(70.0, n))),
        "frequency": frequency, "monetary": monetary,
        "tenure_days": rng.integers(30, 2500, n).astype(float),
        "full_price_share": np.round(rng.beta(3.0, 2.0, n), 3),
        "channel": CHANNELS[rng.choice(3, n, p=[0.5, 0.3, 0.2])],
        "loyalty_tier": TIERS[tier],
        "favorite_category": CATEGORIES[rng.choice(6, n, p=[0.3, 0.2, 0.15, 0.15, 0.1, 0.1])]})


def _retail_base(f: pd.DataFrame) -> np.ndarray:
    """4% to 15%: recent, frequent, full-price buyers buy anyway."""
    return 0.04 + 0.11 * expit(-1.8 + 0.5 * np.log(f["frequency"].to_numpy())
                               - f["recency_days"].to_numpy() / 80.0
                               + 1.5 * (f["full_price_share"].to_numpy() - 0.6))


def _retail_uplift(f: pd.DataFrame) -> np.ndarray:
    """Sharp thresholds within segments; the sitewide discount hurts full-price buyers and the
    win-back hurts the recently active; the VIP gift (cost 3) pays only for platinum customers
    with 8+ orders."""
    recency, frequency = f["recency_days"].to_numpy(), f["frequency"].to_numpy()
    full_price = f["full_price_share"].to_numpy()
    tier, channel = f["loyalty_tier"].to_numpy(), f["channel"].to_numpy()
    category, monetary = f["favorite_category"].to_numpy(), f["monetary"].to_numpy()
    return np.column_stack([
        0.05 * (full_price < 0.4) + 0.01 - 0.04 * (full_price > 0.8),  # sitewide 10% off
        0.01 + 0.05 * ((channel == "web") & (monetary < 45.0)),  # free shipping
        0.10 * (recency > 150) - 0.035 * (recency < 30),  # win-back 15% off
        0.03 + 0.05 * np.isin(tier, ["gold", "platinum"]),  # double points
        0.09 * (category == "footwear") * (full_price > 0.5),  # footwear launch
        0.08 * (category == "beauty"),  # beauty box
        0.01 + 0.11 * ((tier == "platinum") & (frequency >= 8)),  # VIP gift, costly
        0.06 * (category == "home") * (f["tenure_days"].to_numpy() > 365),  # home bundle
    ])


# --- lapsed_vip: spend x recency, targeted by the logging policy, 4 exposures per customer --

DEVICES = np.array(["ios", "android", "desktop"], dtype=object)
LAPSED: tuple[tuple[str, Kind], ...] = (
    ("recency_days", "numeric"), ("spend_12m", "numeric"), ("email_opens", "numeric"),
    ("tenure_years", "numeric"), ("device", "categorical"))


def _lapsed_customers(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Log-normal yearly spend, exponential recency, opens correlated with a hidden per-customer
    propensity to buy (`_loyal`), which also drives the base conversion."""
    loyal = rng.standard_normal(n)
    return pd.DataFrame({
        "recency_days": np.minimum(400.0, np.ceil(rng.exponential(90.0 * np.exp(-0.3 * loyal)))),
        "spend_12m": np.round(rng.lognormal(5.0, 1.0, n), 2),
        "email_opens": rng.poisson(np.exp(1.0 + 0.5 * loyal)).astype(float),
        "tenure_years": np.round(rng.gamma(2.0, 1.2, n), 2),
        "device": DEVICES[rng.choice(3, n, p=[0.4, 0.35, 0.25])],
        "_loyal": loyal})


def _lapsed_base(f: pd.DataFrame) -> np.ndarray:
    """1.5% to 9.5%, mostly the hidden per-customer loyalty: heavy imbalance, clustered."""
    return 0.015 + 0.08 * expit(-2.0 + 1.2 * f["_loyal"].to_numpy())


def _lapsed_shares(f: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """How lapsed (a smooth step at 120 days) and how big a spender (0 below ~90, 1 above ~665)."""
    lapsed = expit((f["recency_days"].to_numpy() - 120.0) / 20.0)
    big = np.clip((np.log(f["spend_12m"].to_numpy()) - 4.5) / 2.0, 0.0, 1.0)
    return lapsed, big


def _lapsed_uplift(f: pd.DataFrame) -> np.ndarray:
    """Win-back pays for lapsed big spenders (and nags the very recent); the VIP preview for
    active big spenders; a bundle for lapsed small spenders; a reminder by opens; a flat 10%."""
    lapsed, big = _lapsed_shares(f)
    recent = f["recency_days"].to_numpy() < 15
    return np.column_stack([
        0.09 * lapsed * big - 0.012 * recent,
        0.07 * (1.0 - lapsed) * big,
        0.04 * lapsed * (1.0 - big),
        0.003 + 0.012 * expit(f["email_opens"].to_numpy() - 4.0),
        np.full(len(f), 0.012),
    ])


def _lapsed_logging(f: pd.DataFrame, n_offers: int) -> np.ndarray:
    """The old campaign: lapsed (90+ days) customers spending 150+ got the win-back six times as
    often and control half as often; active ones spending 150+ got the VIP preview four times."""
    lapsed = f["recency_days"].to_numpy() > 90
    big = f["spend_12m"].to_numpy() > 150.0
    weights = np.ones((len(f), n_offers + 1))
    weights[:, 0] = np.where(lapsed & big, 0.5, 1.0)
    weights[:, 1] = np.where(lapsed & big, 6.0, 1.0)
    weights[:, 2] = np.where(~lapsed & big, 4.0, 1.0)
    return weights / weights.sum(axis=1, keepdims=True)


# --- catalogue_16: 16 offers, 3 that matter, 2-3% conversion --------------------------------

FORMATS = np.array(["flagship", "mall", "outlet", "online", "franchise", "popup"], dtype=object)
CATALOGUE: tuple[tuple[str, Kind], ...] = (
    ("basket", "numeric"), ("age", "numeric"), ("visits_90d", "numeric"),
    ("discount_share", "numeric"), ("distance_km", "numeric"), ("items_per_order", "numeric"),
    ("newsletter", "bool"), ("store_format", "categorical"))
#: offers 3, 8 and 13 matter; the rest lift conversion by a few tenths of a point
MATTER = (3, 8, 13)
_FILLER_LIFT = (0.004, 0.003, 0.005, 0.0, 0.002, 0.006, 0.003, 0.004, 0.0, 0.002, 0.005, 0.003,
                0.004, 0.0, 0.006, 0.002)


def _catalogue_customers(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Log-normal basket and distance, ages 18-80, visits, a bool and six store formats."""
    return pd.DataFrame({
        "basket": np.round(rng.lognormal(3.6, 0.8, n), 2),
        "age": np.clip(np.round(rng.normal(40.0, 13.0, n)), 18, 80),
        "visits_90d": rng.poisson(2.5, n).astype(float),
        "discount_share": np.round(rng.beta(2.0, 5.0, n), 3),
        "distance_km": np.round(rng.lognormal(1.5, 1.0, n), 1),
        "items_per_order": 1.0 + rng.poisson(1.2, n),
        "newsletter": rng.random(n) < 0.35,
        "store_format": FORMATS[rng.choice(6, n, p=[0.15, 0.3, 0.15, 0.25, 0.1, 0.05])]})


def _catalogue_base(f: pd.DataFrame) -> np.ndarray:
    """1% to 5% (about 2.5% on average): a heavily imbalanced outcome."""
    return 0.01 + 0.04 * expit(-1.5 + 0.4 * f["visits_90d"].to_numpy()
                               - 0.3 * np.log(f["distance_km"].to_numpy()))


def _catalogue_uplift(f: pd.DataFrame) -> np.ndarray:
    """Offer 3 rises smoothly with log basket, offer 8 pays in outlets and online and hurts in
    flagships, offer 13 (costly) pays only for newsletter readers under 30."""
    effects = np.tile(_FILLER_LIFT, (len(f), 1))
    fmt = f["store_format"].to_numpy()
    effects[:, 3] = 0.05 * np.clip((np.log(f["basket"].to_numpy()) - 3.3) / 1.5, 0.0, 1.0)
    effects[:, 8] = 0.035 * np.isin(fmt, ["outlet", "online"]) - 0.009 * (fmt == "flagship")
    effects[:, 13] = 0.002 + 0.09 * (f["newsletter"].to_numpy() & (f["age"].to_numpy() < 30))
    return effects


# --- bell_age: bell-shaped effects in age, 7,000 rows per arm -------------------------------

REGIONS = np.array(["north", "south", "east", "west", "centre"], dtype=object)
BELL: tuple[tuple[str, Kind], ...] = (
    ("age", "numeric"), ("kids", "numeric"), ("income", "numeric"), ("orders", "numeric"),
    ("app", "bool"), ("region", "categorical"))


def _bell_customers(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Ages 18-85; kids more likely between 28 and 50; log-normal income; orders; app users."""
    age = np.clip(rng.normal(45.0, 16.0, n), 18.0, 85.0)
    parent = expit(-((age - 39.0) / 9.0) ** 2 * 2.0 + 1.0)
    return pd.DataFrame({
        "age": np.round(age, 1), "kids": rng.poisson(1.8 * parent).astype(float),
        "income": np.round(rng.lognormal(10.4, 0.5, n), 0),
        "orders": rng.poisson(4.0, n).astype(float),
        "app": rng.random(n) < expit(-(age - 35.0) / 10.0),
        "region": REGIONS[rng.integers(0, 5, n)]})


def _bell_base(f: pd.DataFrame) -> np.ndarray:
    """6% to 14%, rising with orders."""
    return 0.06 + 0.08 * expit(0.5 * (f["orders"].to_numpy() - 4.0))


def _bell_uplift(f: pd.DataFrame) -> np.ndarray:
    """Three bumps in age: a family pack peaking at 38 (stronger with kids), a student deal at
    21, a senior club rising past 60 that puts off the under-30s."""
    age = f["age"].to_numpy()
    return np.column_stack([
        (0.04 + 0.015 * np.minimum(f["kids"].to_numpy(), 2.0)) * np.exp(-((age - 38.0) / 8.0) ** 2),
        0.06 * np.exp(-((age - 21.0) / 4.0) ** 2) + 0.01 * f["app"].to_numpy(),
        0.05 * expit((age - 62.0) / 4.0) - 0.02 * (age < 30.0),
    ])


def _bell_logging(f: pd.DataFrame, n_offers: int) -> np.ndarray:
    """App users saw the student deal twice as often."""
    weights = np.ones((len(f), n_offers + 1))
    weights[:, 2] = np.where(f["app"].to_numpy(), 2.0, 1.0)
    return weights / weights.sum(axis=1, keepdims=True)


#: worlds written blind to the method from their descriptions, run once (`bench/worlds.py
#: --blind`); never chosen on
BLIND = {d.name: d for d in (
    Design("issue_retailer", (12.0, 15.0, 20.0, 18.0, 40.0, 25.0, 60.0, 30.0),
           (0.1, 0.5, 0.2, 0.1, 0.1, 0.4, 3.0, 0.1), _retail_uplift, rows_per_arm=6_667,
           customers=_retail_customers, columns=RETAIL, base=_retail_base),
    Design("lapsed_vip", (30.0, 45.0, 25.0, 15.0, 12.0), (0.5, 1.5, 0.3, 0.05, 0.2),
           _lapsed_uplift, _lapsed_logging, rows_per_arm=5_000, customers=_lapsed_customers,
           columns=LAPSED, base=_lapsed_base, rows_per_customer=4.0),
    Design("catalogue_16", tuple(10.0 + 2.0 * k for k in range(16)),
           tuple(1.0 if k == 13 else 0.1 + 0.02 * (k % 5) for k in range(16)),
           _catalogue_uplift, rows_per_arm=1_500, customers=_catalogue_customers,
           columns=CATALOGUE, base=_catalogue_base),
    Design("bell_age", (25.0, 10.0, 20.0), (0.3, 0.05, 0.2), _bell_uplift, _bell_logging,
           rows_per_arm=7_000, customers=_bell_customers, columns=BELL, base=_bell_base),
)}
