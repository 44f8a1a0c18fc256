"""A synthetic retailer in the data contract, with KNOWN heterogeneous treatment effects.

Everything is vectorized NumPy, so 200k exposures generate in about a second. The true
conversion uplift of every offer for every customer is written beside the data
(`true_uplift.parquet`) so tests can check what the models learned against the truth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from features.catalog import Catalog, ContactPolicy, EarlyAccess, Launch, Offer
from features.io import CUSTOMERS, EXPOSURES, INVENTORY, OFFERS, write_catalog, write_parquet

TRUE_UPLIFT = "true_uplift.parquet"
CATEGORIES = ("footwear", "outerwear", "apparel", "beauty", "home", "accessories", "kids")
CATEGORY_WEIGHTS = (0.24, 0.16, 0.18, 0.12, 0.10, 0.10, 0.10)
TIERS = ("bronze", "silver", "gold", "platinum")
SIZES = tuple(str(s) for s in range(38, 47))
COLORS = ("black", "white", "navy", "red", "green")
STORES = ("store_001", "store_002", "store_003")
CONTROL_SHARE = 0.25


@dataclass(frozen=True)
class DemoData:
    """The generated tables, as written to disk."""

    catalog: Catalog
    customers: pd.DataFrame
    exposures: pd.DataFrame
    inventory: pd.DataFrame
    true_uplift: pd.DataFrame


def demo_catalog(now: datetime) -> Catalog:
    """About a dozen offers across categories, two of them limited-supply launches."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    window = {"starts_at": day - timedelta(days=1), "ends_at": day + timedelta(days=30)}
    offers = [
        Offer(offer_id="collab_sneaker_early_access", name="Collab sneaker, early access",
              category="footwear", sku="SNK-COLLAB-01", margin=48.0, cost=0.05,
              channels=("web", "app", "store"), loyalty_tiers=("silver", "gold", "platinum"),
              fallback="waitlist",
              launch=Launch(supply=500, expected_reach=0.4, hold_seconds=900,
                            early_access=EarlyAccess(tiers=("gold", "platinum"),
                                                     starts_at=day - timedelta(days=2)),
                            **window)),
        Offer(offer_id="puffer_jacket_drop", name="Puffer jacket drop", category="outerwear",
              sku="JKT-PUFF-01", margin=60.0, cost=0.05, fallback="preorder",
              launch=Launch(supply=300, **window)),
        Offer(offer_id="sitewide_10_off", name="10% off everything", category="discount",
              margin=8.0, cost=0.10),
        Offer(offer_id="free_shipping", name="Free shipping this week", category="service",
              margin=6.0, cost=0.50, channels=("web", "app", "email")),
        Offer(offer_id="running_shoes_new_season", name="New-season running shoes",
              category="footwear", sku="RUN-22", margin=30.0, cost=0.05),
        Offer(offer_id="denim_bundle", name="Denim bundle: two for one", category="apparel",
              sku="DENIM-B", margin=20.0, cost=0.05),
        Offer(offer_id="beauty_sample_box", name="Beauty sample box", category="beauty",
              sku="BEAUTY-BOX", margin=12.0, cost=0.40),
        Offer(offer_id="home_candle_set", name="Home candle set", category="home",
              sku="CANDLE-SET", margin=10.0, cost=0.05),
        Offer(offer_id="loyalty_double_points", name="Double loyalty points", category="loyalty",
              margin=15.0, cost=0.02, loyalty_tiers=("silver", "gold", "platinum")),
        Offer(offer_id="winback_15_off", name="We miss you: 15% off", category="discount",
              margin=18.0, cost=0.10, channels=("web", "app", "email", "sms")),
        Offer(offer_id="accessories_cross_sell", name="Accessories to match",
              category="accessories", margin=9.0, cost=0.05),
        Offer(offer_id="kids_back_to_school", name="Kids back to school", category="kids",
              margin=14.0, cost=0.05),
    ]
    # for visitors without a profile: no model has seen them, a prior uplift ranks them
    offers += [
        Offer(offer_id="first_purchase_gift", name="A gift with your first order",
              category="welcome", margin=25.0, cost=3.0, audience="new", prior_uplift=0.25,
              channels=("web", "app", "store")),
        Offer(offer_id="consent_prompt", name="Join us: 10% off your first order",
              category="welcome", margin=12.0, cost=0.5, audience="new", prior_uplift=0.2),
    ]
    return Catalog(control_label="control", offers=tuple(offers),
                   contact_policy=ContactPolicy(max_offers=9, window_hours=24, max_declines=2,
                                                decline_days=30))


def _customers(n: int, rng: np.random.Generator) -> pd.DataFrame:
    frequency = 1 + rng.poisson(3.0 * rng.gamma(2.0, 0.5, n))
    monetary = np.round(rng.lognormal(np.log(60.0), 0.5, n), 2)
    spend = frequency * monetary
    tier_idx = np.searchsorted(np.quantile(spend, [0.4, 0.7, 0.9]), spend, side="right")
    size_idx = np.clip(np.round(rng.normal(4.0, 1.8, n)), 0, len(SIZES) - 1).astype(int)
    return pd.DataFrame({
        "customer_id": [f"C{i:07d}" for i in range(1, n + 1)],
        "recency_days": np.minimum(365, np.ceil(rng.exponential(70.0, n))).astype(np.int64),
        "frequency": frequency.astype(np.int64),
        "monetary": monetary,
        "tenure_days": rng.integers(30, 2500, n).astype(np.int64),
        "channel": rng.choice(["web", "app", "store"], n, p=[0.5, 0.3, 0.2]),
        "loyalty_tier": np.asarray(TIERS)[tier_idx],
        "return_rate": np.round(rng.beta(2.0, 8.0, n), 3),
        "full_price_share": np.round(rng.beta(3.0, 2.0, n), 3),
        "favorite_category": rng.choice(CATEGORIES, n, p=CATEGORY_WEIGHTS),
        "preferred_size": np.asarray(SIZES)[size_idx],
        "preferred_color": rng.choice(COLORS, n, p=[0.35, 0.2, 0.2, 0.15, 0.1]),
        "contactable": rng.random(n) > 0.02,
        "customer_value": np.round(spend * 0.35 * rng.lognormal(0.0, 0.25, n), 2),
    })


def baseline_conversion(c: pd.DataFrame) -> np.ndarray:
    """P(convert | no offer): loyal, recent, full-price customers buy anyway."""
    tier = c["loyalty_tier"].map({t: i for i, t in enumerate(TIERS)}).to_numpy()
    logit = (-3.2 + 0.45 * np.log1p(c["frequency"].to_numpy()) - 0.004 * c["recency_days"]
             + 0.25 * tier + 0.8 * (c["full_price_share"].to_numpy() - 0.6))
    return 1.0 / (1.0 + np.exp(-logit))


def _uplift_functions() -> dict[str, Callable[[pd.DataFrame], np.ndarray]]:
    """The TRUE conversion uplift of each offer: heterogeneous, sometimes negative."""

    def cat(c: pd.DataFrame, name: str) -> np.ndarray:
        return (c["favorite_category"] == name).to_numpy(dtype=float)

    def col(c: pd.DataFrame, name: str) -> np.ndarray:
        return c[name].to_numpy(dtype=float)

    return {
        "collab_sneaker_early_access": lambda c: cat(c, "footwear") * (
            0.04 + 0.14 * (col(c, "full_price_share") > 0.5)),
        "puffer_jacket_drop": lambda c: cat(c, "outerwear") * 0.12
        + 0.02 * (c["channel"] == "app").to_numpy(),
        "sitewide_10_off": lambda c: 0.06 * (col(c, "full_price_share") < 0.45)
        - 0.03 * (col(c, "full_price_share") > 0.8),
        "free_shipping": lambda c: 0.01 + 0.05 * (c["channel"] == "web").to_numpy()
        * (col(c, "monetary") < 50),
        "running_shoes_new_season": lambda c: cat(c, "footwear") * 0.08
        * (col(c, "recency_days") < 90),
        "denim_bundle": lambda c: 0.07 * cat(c, "apparel") - 0.03 * (col(c, "return_rate") > 0.3),
        "beauty_sample_box": lambda c: 0.10 * cat(c, "beauty"),
        "home_candle_set": lambda c: 0.07 * cat(c, "home") * (col(c, "tenure_days") > 365),
        "loyalty_double_points": lambda c: 0.05 * c["loyalty_tier"].isin(
            ["gold", "platinum"]).to_numpy() + 0.015 * (c["loyalty_tier"] == "silver").to_numpy(),
        "winback_15_off": lambda c: 0.12 * (col(c, "recency_days") > 150)
        - 0.05 * (col(c, "recency_days") < 30),
        "accessories_cross_sell": lambda c: 0.06 * cat(c, "accessories") + 0.005,
        "kids_back_to_school": lambda c: 0.09 * cat(c, "kids") - 0.02 * (col(c, "frequency") > 6),
    }


def true_uplift(customers: pd.DataFrame, catalog: Catalog) -> pd.DataFrame:
    """The true conversion uplift per customer and offer (columns in catalog order)."""
    functions = _uplift_functions()
    base = baseline_conversion(customers)
    data = {"customer_id": customers["customer_id"].to_numpy(),
            "baseline_conversion": base}
    for offer_id in catalog.offer_ids:
        lift = functions[offer_id](customers)
        data[offer_id] = np.clip(base + lift, 0.0, 1.0) - base
    return pd.DataFrame(data)


#: shares of the demo's request context (the data contract's context columns)
DEVICES = ("mobile", "desktop", "tablet")
DEVICE_WEIGHTS = (0.55, 0.35, 0.10)
#: exposures whose context was recorded (the rest, e.g. e-mails, have null context columns)
CONTEXT_RECORDED = 0.7
#: pages where accessories sell: an outfit or shoes on screen
OUTFIT_PAGES = ("footwear", "apparel", "accessories")
FREE_SHIPPING_THRESHOLD = 50.0


def _context(m: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """The situation of each exposure (device, page viewed, cart value), and which exposures
    recorded it (the others have null context columns).

    Drawn independently of the customer, so an offer's uplift averaged over situations is the
    customer's true uplift (`true_uplift.parquet`).
    """
    device = np.asarray(DEVICES)[rng.choice(len(DEVICES), m, p=DEVICE_WEIGHTS)]
    page = rng.choice(CATEGORIES, m, p=CATEGORY_WEIGHTS)
    cart = np.where(rng.random(m) < 0.4, 0.0, np.round(rng.lognormal(np.log(45.0), 0.6, m), 2))
    recorded = rng.random(m) < CONTEXT_RECORDED
    return pd.DataFrame({"device": device, "page": page, "cart_value": cart}), recorded


def context_uplift(context: pd.DataFrame) -> dict[str, np.ndarray]:
    """The TRUE extra conversion uplift each situation adds to an offer: zero on average over
    situations (centred on each situation's share), so it moves decisions, not the truth per
    customer. Accessories sell beside an outfit, free shipping tips a cart just under the
    threshold, and 10% off works better on a phone."""
    outfit = context["page"].isin(OUTFIT_PAGES).to_numpy(dtype=float)
    cart = context["cart_value"].to_numpy(dtype=float)
    near = ((cart > 0) & (cart < FREE_SHIPPING_THRESHOLD)).astype(float)
    mobile = (context["device"] == "mobile").to_numpy(dtype=float)
    return {"accessories_cross_sell": 0.15 * (outfit - outfit.mean()),
            "free_shipping": 0.12 * (near - near.mean()),
            "sitewide_10_off": 0.05 * (mobile - mobile.mean())}


def _exposures(customers: pd.DataFrame, truth: pd.DataFrame, catalog: Catalog, m: int,
               rng: np.random.Generator, now: datetime, situation: np.random.Generator
               ) -> pd.DataFrame:
    who = rng.integers(0, len(customers), m)
    offers = np.asarray(catalog.offer_ids)
    arms = np.concatenate([[catalog.control_label], offers])
    p_offer = (1.0 - CONTROL_SHARE) / len(offers)
    probs = np.concatenate([[CONTROL_SHARE], np.full(len(offers), p_offer)])
    arm = rng.choice(len(arms), m, p=probs)
    base = truth["baseline_conversion"].to_numpy()[who]
    lifts = truth[list(offers)].to_numpy()
    lift = np.where(arm == 0, 0.0, lifts[who, np.maximum(arm - 1, 0)])
    context, recorded = _context(m, situation)
    for k, extra in context_uplift(context).items():
        lift += np.where(arm == 1 + list(offers).index(k), extra, 0.0)
    converted = rng.random(m) < np.clip(base + lift, 0.0, 1.0)
    order_value = customers["monetary"].to_numpy()[who] * rng.lognormal(0.0, 0.3, m)
    feature_cols = [c for c in customers.columns if c not in ("contactable", "customer_value")]
    frame = customers.iloc[who][feature_cols].reset_index(drop=True)
    seconds = rng.integers(0, 90 * 86400, m)
    frame.insert(1, "treatment", arms[arm])
    frame.insert(2, "converted", converted.astype(np.int64))
    frame.insert(3, "revenue", np.where(converted, np.round(order_value, 2), 0.0))
    frame.insert(4, "propensity", probs[arm])
    frame.insert(5, "exposed_at", pd.to_datetime(now - timedelta(days=90), utc=True)
                 + pd.to_timedelta(seconds, unit="s"))
    frame["device"] = context["device"].astype(object).where(recorded, None)
    frame["page"] = context["page"].astype(object).where(recorded, None)
    frame["cart_value"] = context["cart_value"].where(recorded, np.nan)
    return frame


def _new_customer_exposures(n: int, catalog: Catalog, rng: np.random.Generator, now: datetime,
                            columns: pd.Index) -> pd.DataFrame:
    """`n` exposures of first visits (anonymous sessions): no profile, so every customer
    column is null and only the request context describes them; randomized between control
    and the offers for new customers, with KNOWN effects of the context: the first-purchase
    gift tips a large first cart (50 or more), the consent prompt works on phones."""
    offers = catalog.for_new_customers()
    assert offers is not None, "the demo catalog has offers for new customers"
    arms = np.array([catalog.control_label, *offers.offer_ids])
    probs = np.array([CONTROL_SHARE, *[(1 - CONTROL_SHARE) / len(offers.offers)]
                      * len(offers.offers)])
    arm = rng.choice(len(arms), n, p=probs)
    context, recorded = _context(n, rng)
    cart = context["cart_value"].to_numpy()
    base = 0.02 + 0.03 * (cart > 0)
    lift = {"first_purchase_gift": 0.02 + 0.25 * (cart >= FREE_SHIPPING_THRESHOLD),
            "consent_prompt": 0.02 + 0.08 * (context["device"] == "mobile").to_numpy()}
    effect = np.zeros(n)
    for k, offer_id in enumerate(offers.offer_ids):
        effect += np.where(arm == k + 1, lift[offer_id], 0.0)
    converted = rng.random(n) < np.clip(base + effect, 0.0, 1.0)
    value = np.maximum(cart, 20.0) * rng.lognormal(0.0, 0.3, n)
    frame = pd.DataFrame({name: pd.Series([None] * n, dtype=object) for name in columns})
    frame["customer_id"] = [f"S{i:08d}" for i in range(1, n + 1)]
    frame["treatment"] = arms[arm]
    frame["converted"] = converted.astype(np.int64)
    frame["revenue"] = np.where(converted, np.round(value, 2), 0.0)
    frame["propensity"] = probs[arm]
    frame["exposed_at"] = (pd.to_datetime(now - timedelta(days=90), utc=True)
                           + pd.to_timedelta(rng.integers(0, 90 * 86400, n), unit="s"))
    frame["device"] = context["device"].astype(object).where(recorded, None)
    frame["page"] = context["page"].astype(object).where(recorded, None)
    frame["cart_value"] = context["cart_value"].where(recorded, np.nan)
    return frame


def with_new_customers(known: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Both exposure logs as one, marked by the contract's `new_customer` column (customer
    columns of the new rows keep the known rows' types, as nulls)."""
    out = pd.concat([known.assign(new_customer=False), new.assign(new_customer=True)],
                    ignore_index=True)
    for name in known.columns:
        kind = known[name].dtype.kind
        if kind == "f":
            out[name] = out[name].astype(np.float64)
        elif kind in "iub" and out[name].isna().any():
            out[name] = out[name].astype("Int64" if kind in "iu" else "boolean")
    return out


def _inventory(rng: np.random.Generator) -> pd.DataFrame:
    rows: list[dict] = []
    sold_out_online = {"44", "45"}
    for size in SIZES:  # the collab sneaker: ~500 pairs, two sizes sold out online
        online = 0 if size in sold_out_online else int(rng.integers(30, 80))
        rows.append({"sku": "SNK-COLLAB-01", "size": size, "color": None, "location": None,
                     "on_hand": online})
        for store in STORES:
            rows.append({"sku": "SNK-COLLAB-01", "size": size, "color": None, "location": store,
                         "on_hand": int(rng.integers(0, 4))})
    for color, units in (("black", 150), ("navy", 120), ("green", 0)):  # the jacket drop
        rows.append({"sku": "JKT-PUFF-01", "size": None, "color": color, "location": None,
                     "on_hand": units})
    for size in SIZES:
        rows.append({"sku": "RUN-22", "size": size, "color": None, "location": None,
                     "on_hand": 0 if size == "41" else int(rng.integers(5, 40))})
    for sku, units in (("DENIM-B", 400), ("BEAUTY-BOX", 250), ("CANDLE-SET", 0)):
        rows.append({"sku": sku, "size": None, "color": None, "location": None, "on_hand": units})
    frame = pd.DataFrame(rows)
    for column in ("size", "color", "location"):
        frame[column] = frame[column].astype("string")
    return frame


def generate(customers: int, exposures: int, seed: int, now: datetime | None = None,
             new_customers: int = 0) -> DemoData:
    """Generate the whole demo retailer in memory (pure: same seed, same data).

    `new_customers`: that many exposures of first visits (no profile) are added, marked by
    the `new_customer` column: what a first-visit policy learns from.
    """
    now = now or datetime.now(UTC)
    rng = np.random.default_rng(seed)
    catalog = demo_catalog(now)
    people = _customers(customers, rng)
    truth = true_uplift(people, catalog)
    # the request context draws from its own stream: the other tables stay as they were
    log = _exposures(people, truth, catalog, exposures, rng, now,
                     np.random.default_rng([seed, 1]))
    if new_customers:
        log = with_new_customers(log, _new_customer_exposures(
            new_customers, catalog, np.random.default_rng([seed, 2]), now, log.columns))
    return DemoData(catalog, people, log, _inventory(rng), truth)


def write(data: DemoData, out: str | Path) -> dict[str, Path]:
    """Write the demo tables into `out` in the data contract; returns the paths written."""
    out = Path(out)
    paths = {name: out / name for name in (EXPOSURES, CUSTOMERS, INVENTORY, OFFERS, TRUE_UPLIFT)}
    write_catalog(data.catalog, paths[OFFERS])
    write_parquet(data.customers, paths[CUSTOMERS])
    write_parquet(data.exposures, paths[EXPOSURES])
    write_parquet(data.inventory, paths[INVENTORY])
    write_parquet(data.true_uplift, paths[TRUE_UPLIFT])
    return paths
