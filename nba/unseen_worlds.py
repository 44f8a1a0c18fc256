"""UNSEEN: four synthetic retailers written blind to the method, from the paragraphs below,
before any policy was trained on them (`bench/worlds.py --unseen`); run once, never tuned on.

They differ in kind from DESIGNS, HELD_OUT, FRESH and BLIND:

- `loyal_multiplier` (a grocery chain, multiplicative effects): every offer but one lifts
  conversion in proportion to the customer's own chance of buying anyway (double points add 30%
  of it, free delivery 15%), so the customers an offer helps most are the ones who buy anyway,
  and uplift and baseline propensity are confounded in any ranking. The base runs from 1% to
  about 45% (visits, recency, club membership). Double points are costly (0.6) and pay only
  above a base of ~13%; free delivery (0.3) pays above 10% and beats double points below 20%;
  a basket discount adds 5% of it plus half a point and is never the best offer (it pays
  only above a 10% base); a reactivation coupon has
  an additive effect (4.5 points) for customers lapsed 60+ days, who are the ones least likely
  to buy. No offer pays on average (the best single answer is nobody). Uniform logging, 2,500
  rows per arm.
- `store_events` (a fashion chain with 150 stores, a high-cardinality categorical): store sizes
  are Zipf-like (a few flagships, a long tail), so the contract's 50-level cap folded about two
  thirds of the stores into "unknown" (written so; since issue 12's twelfth round a categorical
  past 50 levels is level codes, and all 150 stores reach the models). A local in-store event
  invitation lifts conversion by up to 10 points in 8 stores holding an event (5 among the 50
  biggest, 3 in the tail), fading with the customer's distance to the store, and by half a
  point elsewhere; a national 15% off is flat; free returns pay with the customer's online
  share. 3,000 rows per arm.
- `new_and_missing` (an online shop, informative missing values): a third of customers never
  ordered, so their three order-history features (orders, average basket, days since the last
  order) are missing (NaN), and age is missing at random for a fifth of everyone. The welcome
  offer (first order only) pays exactly for the never-ordered, a replenishment reminder for
  repeat buyers due to reorder, a tier upgrade for big baskets, and free shipping a little for
  everyone. The missingness itself is the signal for the best offer. 2,500 rows per arm.
- `twins_small` (a beauty retailer's small test, the honest answer the best single offer): 4
  offers at 700 rows per arm. The same free sample sent two ways, by e-mail voucher (cost 0.1)
  and by post (0.6), has the same effect; a bundle discount lifts occasional buyers a little
  less than the sample but cannibalises frequent buyers' full-price purchases (a negative
  effect); double points lift everyone a little. The e-mail sample is every customer's best
  offer, so the oracle is the best single offer. Logging very skewed: the postal sample went to
  40% of store-card customers and 3% of online ones.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

from features.schema import Kind
from nba.worlds import Design

# --- loyal_multiplier: effects proportional to the base rate --------------------------------

CHANNELS = np.array(["store", "web", "app"], dtype=object)
GROCERY: tuple[tuple[str, Kind], ...] = (
    ("visits_30d", "numeric"), ("days_since_visit", "numeric"), ("basket", "numeric"),
    ("email_clicks", "numeric"), ("tenure_years", "numeric"), ("club_member", "bool"),
    ("channel", "categorical"))
LAPSED_DAYS = 60.0


def _grocery_customers(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """A latent engagement drives visits up and days since the last visit down; clicks follow
    it loosely; basket and tenure are independent of it."""
    z = rng.standard_normal(n)
    return pd.DataFrame({
        "visits_30d": rng.poisson(np.exp(1.0 + 0.7 * z)).astype(float),
        "days_since_visit": np.minimum(365.0, np.ceil(rng.exponential(30.0 * np.exp(-0.6 * z)))),
        "basket": np.round(rng.lognormal(3.5, 0.6, n), 2),
        "email_clicks": rng.poisson(np.exp(0.3 + 0.4 * z)).astype(float),
        "tenure_years": np.round(rng.gamma(2.0, 2.0, n), 2),
        "club_member": rng.random(n) < expit(0.5 * z - 0.5),
        "channel": CHANNELS[rng.choice(3, n, p=[0.5, 0.3, 0.2])]})


def _grocery_base(f: pd.DataFrame) -> np.ndarray:
    """1% to ~46%: frequent, recent club members buy anyway."""
    return 0.01 + 0.45 * expit(-2.3 + 0.25 * f["visits_30d"].to_numpy()
                               - f["days_since_visit"].to_numpy() / 40.0
                               + 0.6 * f["club_member"].to_numpy())


def _grocery_uplift(f: pd.DataFrame) -> np.ndarray:
    """Double points and free delivery scale with the base; a small basket discount too (plus a
    constant); the reactivation coupon is additive, for the lapsed only."""
    base = _grocery_base(f)
    lapsed = f["days_since_visit"].to_numpy() > LAPSED_DAYS
    return np.column_stack([0.30 * base, 0.15 * base, 0.005 + 0.05 * base, 0.045 * lapsed])


# --- store_events: 150 stores, a local offer in a handful ------------------------------------

N_STORES = 150
STORES = np.array([f"st{k:03d}" for k in range(N_STORES)], dtype=object)  # by size, biggest first
#: Zipf-like store sizes (exponent 0.8, offset 3): a few flagships, a long tail
STORE_SHARE = (np.arange(N_STORES) + 4.0) ** -0.8 / ((np.arange(N_STORES) + 4.0) ** -0.8).sum()
#: stores holding an event: five among the 50 biggest, three in the tail
EVENT_STORES = tuple(STORES[[1, 6, 14, 27, 43, 68, 94, 129]])
FASHION: tuple[tuple[str, Kind], ...] = (
    ("store", "categorical"), ("distance_km", "numeric"), ("age", "numeric"),
    ("visits_90d", "numeric"), ("spend_12m", "numeric"), ("online_share", "numeric"))


def _fashion_customers(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """A home store by size; log-normal distance to it and spend; ages 18-80; visits; the share
    of purchases made online (beta)."""
    return pd.DataFrame({
        "store": STORES[rng.choice(N_STORES, n, p=STORE_SHARE)],
        "distance_km": np.round(rng.lognormal(1.6, 0.9, n), 1),
        "age": np.clip(np.round(rng.normal(38.0, 12.0, n)), 18, 80),
        "visits_90d": rng.poisson(2.0, n).astype(float),
        "spend_12m": np.round(rng.lognormal(5.2, 0.8, n), 2),
        "online_share": np.round(rng.beta(1.5, 2.0, n), 3)})


def _fashion_base(f: pd.DataFrame) -> np.ndarray:
    """4% to 12%, rising with visits."""
    return 0.04 + 0.08 * expit(0.6 * f["visits_90d"].to_numpy() - 1.5)


def _fashion_uplift(f: pd.DataFrame) -> np.ndarray:
    """The event invitation pays in the event stores for customers living near them; 15% off is
    flat; free returns scale with the online share."""
    event = f["store"].isin(EVENT_STORES).to_numpy()
    near = np.exp(-f["distance_km"].to_numpy() / 10.0)
    return np.column_stack([0.005 + 0.10 * event * near, np.full(len(f), 0.02),
                            0.035 * f["online_share"].to_numpy()])


# --- new_and_missing: history features missing for the never-ordered -------------------------

DEVICES = np.array(["ios", "android", "desktop"], dtype=object)
SHOP: tuple[tuple[str, Kind], ...] = (
    ("signup_days", "numeric"), ("sessions_30d", "numeric"), ("age", "numeric"),
    ("orders_12m", "numeric"), ("avg_basket", "numeric"), ("days_since_order", "numeric"),
    ("newsletter", "bool"), ("device", "categorical"))
HISTORY = ("orders_12m", "avg_basket", "days_since_order")


def _shop_customers(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Recent sign-ups are more often without an order (about a third in all); the never-ordered
    have no order history (NaN); age is missing at random for a fifth."""
    signup = np.ceil(rng.exponential(400.0, n))
    never = rng.random(n) < 0.2 + 0.5 * np.exp(-signup / 150.0)
    orders = 1.0 + rng.poisson(2.5, n)
    age = np.clip(np.round(rng.normal(36.0, 11.0, n)), 18, 80)
    return pd.DataFrame({
        "signup_days": signup,
        "sessions_30d": rng.poisson(np.where(never, 2.0, 4.0)).astype(float),
        "age": np.where(rng.random(n) < 0.2, np.nan, age),
        "orders_12m": np.where(never, np.nan, orders),
        "avg_basket": np.where(never, np.nan, np.round(rng.lognormal(4.0, 0.5, n), 2)),
        "days_since_order": np.where(never, np.nan, np.ceil(rng.exponential(40.0, n))),
        "newsletter": rng.random(n) < 0.4,
        "device": DEVICES[rng.choice(3, n, p=[0.4, 0.35, 0.25])]})


def _never(f: pd.DataFrame) -> np.ndarray:
    return f["orders_12m"].isna().to_numpy()


def _shop_base(f: pd.DataFrame) -> np.ndarray:
    """2% to 6% for the never-ordered (with sessions), 5% to 20% for buyers (with orders)."""
    sessions = f["sessions_30d"].to_numpy()
    orders = np.nan_to_num(f["orders_12m"].to_numpy())
    return np.where(_never(f), 0.02 + 0.04 * expit(sessions - 3.0),
                    0.05 + 0.15 * expit(0.5 * orders - 2.0))


def _shop_uplift(f: pd.DataFrame) -> np.ndarray:
    """Welcome offer for the never-ordered; replenishment reminder for buyers with 3+ orders due
    (around 45 days since the last); tier upgrade for baskets over 80; free shipping flat."""
    never = _never(f)
    orders = np.nan_to_num(f["orders_12m"].to_numpy())
    since = np.nan_to_num(f["days_since_order"].to_numpy())
    basket = np.nan_to_num(f["avg_basket"].to_numpy())
    return np.column_stack([0.06 * never,
                            0.08 * (orders >= 3) * expit((since - 45.0) / 10.0),
                            0.03 * (basket > 80.0),
                            np.full(len(f), 0.015)])


# --- twins_small: near-duplicate offers, a cannibalising one, skewed logging, small data ------

SKIN = np.array(["dry", "oily", "combination", "normal", "sensitive"], dtype=object)
ACCOUNT = np.array(["store_card", "online"], dtype=object)
BEAUTY: tuple[tuple[str, Kind], ...] = (
    ("orders_12m", "numeric"), ("recency_days", "numeric"), ("age", "numeric"),
    ("has_app", "bool"), ("skin_type", "categorical"), ("account", "categorical"))
FREQUENT = 4.0


def _beauty_customers(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Orders, recency, ages 16-75, app users, five skin types, half store-card accounts."""
    return pd.DataFrame({
        "orders_12m": rng.poisson(3.0, n).astype(float),
        "recency_days": np.minimum(365.0, np.ceil(rng.exponential(60.0, n))),
        "age": np.clip(np.round(rng.normal(34.0, 12.0, n)), 16, 75),
        "has_app": rng.random(n) < 0.45,
        "skin_type": SKIN[rng.integers(0, 5, n)],
        "account": ACCOUNT[rng.integers(0, 2, n)]})


def _beauty_base(f: pd.DataFrame) -> np.ndarray:
    """3% to ~20%: frequent, recent buyers buy anyway."""
    return 0.03 + 0.17 * expit(0.5 * f["orders_12m"].to_numpy() - 1.5
                               - f["recency_days"].to_numpy() / 60.0)


def _beauty_uplift(f: pd.DataFrame) -> np.ndarray:
    """The sample the same by e-mail and by post; the bundle +2 points for occasional buyers,
    -2 for frequent ones (it replaces full-price purchases); double points +1.2 points."""
    frequent = f["orders_12m"].to_numpy() > FREQUENT
    sample = np.full(len(f), 0.025)
    return np.column_stack([sample, sample, np.where(frequent, -0.02, 0.02),
                            np.full(len(f), 0.012)])


def _beauty_logging(f: pd.DataFrame, n_offers: int) -> np.ndarray:
    """The postal sample (offer 1) to 40% of store-card customers and 3% of online ones; the
    rest split evenly over control and the other offers."""
    card = (f["account"].to_numpy() == "store_card")[:, None]
    postal = np.where(card[:, 0], 0.40, 0.03)
    others = (1.0 - postal) / n_offers
    probs = np.repeat(others[:, None], n_offers + 1, axis=1)
    probs[:, 2] = postal
    return probs


#: worlds written blind to the method from the paragraphs above, run once (`bench/worlds.py
#: --unseen`); never chosen on
UNSEEN = {d.name: d for d in (
    Design("loyal_multiplier", (15.0, 20.0, 10.0, 20.0), (0.6, 0.3, 0.1, 0.4), _grocery_uplift,
           rows_per_arm=2_500, customers=_grocery_customers, columns=GROCERY,
           base=_grocery_base),
    Design("store_events", (25.0, 18.0, 20.0), (0.3, 0.2, 0.15), _fashion_uplift,
           rows_per_arm=3_000, customers=_fashion_customers, columns=FASHION,
           base=_fashion_base),
    Design("new_and_missing", (15.0, 25.0, 30.0, 20.0), (0.2, 0.05, 0.4, 0.2), _shop_uplift,
           rows_per_arm=2_500, customers=_shop_customers, columns=SHOP, base=_shop_base),
    Design("twins_small", (20.0, 20.0, 20.0, 20.0), (0.1, 0.6, 0.1, 0.15), _beauty_uplift,
           _beauty_logging, rows_per_arm=700, customers=_beauty_customers, columns=BEAUTY,
           base=_beauty_base),
)}
