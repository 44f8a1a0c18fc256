"""SEALED: five synthetic retailers written blind to the method, from the paragraphs below,
checked from the truth alone and run once, later (`bench/worlds.py --sealed`); never tuned on.

They differ in kind from each other and from DESIGNS, HELD_OUT, FRESH, BLIND and UNSEEN:

- `electronics_sessions` (an electronics web shop, request context x customer): the device, the
  page and the cart value are drawn per exposure (the contract's context columns), and a
  customer is seen about 3 times, in different contexts. An in-app 10% off pays on a phone for
  customers under ~35 and slightly hurts on a desktop; pay-in-3 pays on the product and cart
  pages with a cart over ~250; a free 2-year warranty pays for customers over ~50 with a cart
  over ~150; a price-match banner helps desktop product pages a little; free next-day delivery
  a little everywhere, more at the cart. The old rules engine logged with skewed propensities
  (about 2% to 60%) on the same features: the app offer mostly to young phone users, pay-in-3
  mostly at the cart, the warranty to older customers. 6,000 rows per arm.
- `department_catalogue` (a department store, 30 offers with shared structure): 6 categories
  x 5 offer types (10% off, 20% off, a free gift, double points, free delivery). An offer's
  effect is the customer's share of spend in its category times the type's response (discounts
  to promotion buyers, the gift to full-price buyers, points with tenure, delivery online), a
  category multiplier and a fixed small per-offer jitter: offers of a category move together,
  and about two thirds of customers' best offer is in the category they buy most (mostly 20%
  off; points for loyal card holders; the gift and delivery rarely). Category margins 12 to
  40; discounts lower the margin. Uniform logging, 2,000 rows per arm (62,000 in all).
- `meal_kit_weekly` (a meal-kit subscription, repeat customers, a hidden trait, high base):
  each subscriber is seen 6 times (weekly e-mails); whether they order that week runs from 5%
  to 55% (about 25% on average) by a hidden habit, which the last 8 weeks' boxes reflect. A
  hidden deal-seeking trait, which coupon uses over 12 months reflect noisily, drives the
  effects: 20% off the next box (costly, 1.2) pays only for strong deal seekers (about a
  tenth); a new-recipe preview lifts the others a little (more on the veggie plan); an
  order-deadline push helps app users and annoys the most regular subscribers; a free dessert
  helps family plans. Effects are -1 to 12 points on a 25% base. Uniform logging, 7,000 rows
  per arm (about 5,800 subscribers).
- `diy_cheap_default` (a DIY chain, one cheap offer for nearly everyone): a 5-off-50 e-mail
  voucher (cost 0.05) is the best offer for about 83% of customers; a free weekend tool hire
  (cost 3.0, margin 60) pays for trade accounts with several projects (about a tenth); a free
  kitchen design visit (cost 6.0, margin 200 on a kitchen order) pays for homeowners who moved in
  the last year or so and browse kitchens (about 5%); double points never pay.
  The design visit was logged three times as often for homeowners. 5,000 rows per arm.
- `outdoor_seasons` (an outdoor-clothing brand, seasonality and recency decay): the month of
  the exposure (1-12, a number, so December and January are far apart) moves the base and two
  seasonal offers: a winter-jacket discount peaks in November and pays by climate (cold
  regions most), summer-sale early access peaks in June and pays mostly for members. A
  "complete the look" follow-up decays with days since the last purchase (a 3-week scale); a
  win-back 25% off pays only for customers lapsed 8+ months and slightly hurts recent buyers.
  Calendar-driven logging: each seasonal offer three times as often in its season. 3,000 rows
  per arm.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

from features.schema import Kind
from nba.worlds import Design

# --- electronics_sessions: context per exposure, crossed with customer features -------------

DEVICES = np.array(["ios", "android", "desktop", "tablet"], dtype=object)
PAGES = np.array(["home", "search", "product", "cart"], dtype=object)
#: the page's purchase intent on the base rate's logit scale
PAGE_INTENT = {"home": -1.0, "search": 0.0, "product": 0.6, "cart": 2.0}
ELECTRONICS: tuple[tuple[str, Kind], ...] = (
    ("age", "numeric"), ("visits_30d", "numeric"), ("orders_12m", "numeric"),
    ("newsletter", "bool"), ("device", "categorical"), ("page", "categorical"),
    ("cart_value", "numeric"))


def _electronics_customers(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Ages 18-80 (a fifth of the mass over 50), visits, orders, newsletter sign-up; a hidden
    preference for phones, falling with age, that the context draws the device from."""
    age = np.clip(np.round(rng.normal(40.0, 13.0, n)), 18, 80)
    return pd.DataFrame({
        "age": age,
        "visits_30d": rng.poisson(3.0, n).astype(float),
        "orders_12m": rng.poisson(1.2, n).astype(float),
        "newsletter": rng.random(n) < 0.35,
        "_mobile": expit(1.5 - (age - 18.0) / 12.0 + rng.normal(0.0, 0.8, n))})


def _electronics_context(f: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Per exposure: a phone (ios or android) with the customer's hidden preference, else a
    desktop (4 in 5) or a tablet; the page; the cart's value (0 off the cart and product pages:
    the value of what is in the basket, log-normal around 120)."""
    n = len(f)
    mobile = rng.random(n) < f["_mobile"].to_numpy()
    device = np.where(mobile, DEVICES[rng.integers(0, 2, n)],
                      np.where(rng.random(n) < 0.8, "desktop", "tablet"))
    page = PAGES[rng.choice(4, n, p=[0.3, 0.25, 0.3, 0.15])]
    value = np.round(rng.lognormal(np.log(120.0), 0.9, n), 2)
    cart = np.where(np.isin(page, ["product", "cart"]), value, 0.0)
    return f.assign(device=device.astype(object), page=page, cart_value=cart)


def _phone(f: pd.DataFrame) -> np.ndarray:
    return f["device"].isin(["ios", "android"]).to_numpy()


def _electronics_base(f: pd.DataFrame) -> np.ndarray:
    """About 1% on the home page to ~30% at the cart for frequent visitors."""
    intent = f["page"].map(PAGE_INTENT).to_numpy(dtype=float)
    return 0.01 + 0.30 * expit(-2.5 + intent + 0.15 * f["visits_30d"].to_numpy()
                               + 0.2 * f["orders_12m"].to_numpy())


def _electronics_uplift(f: pd.DataFrame) -> np.ndarray:
    """App discount (phone x young), pay-in-3 (product/cart page x cart value), price-match
    banner (desktop product page), warranty (age x cart value), next-day delivery (cart)."""
    age, cart = f["age"].to_numpy(), f["cart_value"].to_numpy()
    page, device = f["page"].to_numpy(), f["device"].to_numpy()
    shopping = np.isin(page, ["product", "cart"])
    app = np.where(_phone(f), 0.07 * expit((35.0 - age) / 5.0),
                   np.where(device == "desktop", -0.004, 0.0))
    bnpl = 0.003 + 0.06 * shopping * expit((cart - 250.0) / 60.0)
    match = 0.008 + 0.02 * ((page == "product") & (device == "desktop"))
    warranty = 0.05 * expit((age - 50.0) / 6.0) * expit((cart - 150.0) / 50.0)
    delivery = 0.012 + 0.02 * (page == "cart")
    return np.column_stack([app, bnpl, match, warranty, delivery])


def _electronics_logging(f: pd.DataFrame, n_offers: int) -> np.ndarray:
    """The rules engine: the app offer to phone users (mostly the young), pay-in-3 at the cart,
    the warranty to the over-50s; about 2% to 60%."""
    phone, age, page = _phone(f), f["age"].to_numpy(), f["page"].to_numpy()
    weights = np.ones((len(f), n_offers + 1))
    weights[:, 1] = np.where(phone, np.where(age < 35.0, 6.0, 2.5), 0.15)
    weights[:, 2] = np.select([page == "cart", page == "product"], [4.0, 1.5], 0.3)
    weights[:, 4] = np.where(age > 50.0, 2.0, 0.5)
    return weights / weights.sum(axis=1, keepdims=True)


# --- department_catalogue: 30 offers, 6 categories x 5 types ---------------------------------

CATEGORIES = ("beauty", "fashion", "home", "electronics", "toys", "food")
CATEGORY_MARGIN = (30.0, 35.0, 40.0, 25.0, 20.0, 12.0)
CATEGORY_RESPONSE = (1.0, 1.1, 0.9, 0.8, 1.3, 0.8)
TYPES = ("pct10", "pct20", "gift", "points", "delivery")
TYPE_MARGIN = (0.9, 0.75, 1.0, 1.0, 1.0)  # share of the category margin kept
TYPE_COST = (0.1, 0.1, 0.5, 0.3, 0.4)
#: a fixed multiplier per offer (category x type), so offers of a category are alike, not equal
JITTER = np.exp(np.random.default_rng(20_261_201).normal(0.0, 0.15, (6, 5)))
CHANNELS = np.array(["store", "online", "both"], dtype=object)
DEPARTMENT: tuple[tuple[str, Kind], ...] = (
    *((f"share_{c}", "numeric") for c in CATEGORIES),
    ("spend_12m", "numeric"), ("promo_share", "numeric"), ("tenure_years", "numeric"),
    ("card_holder", "bool"), ("channel", "categorical"))


def _department_customers(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """The share of the last year's spend per category (Dirichlet: most customers lean to one
    or two), spend, the share bought on promotion, tenure, store card, channel."""
    shares = rng.dirichlet(np.full(6, 0.6), n)
    frame = pd.DataFrame({f"share_{c}": np.round(shares[:, k], 3)
                          for k, c in enumerate(CATEGORIES)})
    return frame.assign(
        spend_12m=np.round(rng.lognormal(5.5, 0.8, n), 2),
        promo_share=np.round(rng.beta(2.0, 3.0, n), 3),
        tenure_years=np.round(rng.gamma(2.0, 2.5, n), 2),
        card_holder=rng.random(n) < 0.3,
        channel=CHANNELS[rng.choice(3, n, p=[0.45, 0.35, 0.2])])


def _department_base(f: pd.DataFrame) -> np.ndarray:
    """3% to ~15%, rising with spend and the store card."""
    return 0.03 + 0.12 * expit(-1.0 + 0.8 * (np.log(f["spend_12m"].to_numpy()) - 5.5)
                               + 0.5 * f["card_holder"].to_numpy())


def _department_uplift(f: pd.DataFrame) -> np.ndarray:
    """Offer (category c, type t), in the order c0t0, c0t1, ..., c5t4: the category's share x
    the type's response x the category's multiplier x the offer's jitter."""
    promo = f["promo_share"].to_numpy()
    loyal = np.minimum(f["tenure_years"].to_numpy() / 5.0, 1.0)
    online = (f["channel"].to_numpy() != "store").astype(float)
    response = np.column_stack([0.04 * (0.5 + promo), 0.07 * (0.3 + 1.2 * promo),
                                0.05 * (1.0 - promo),
                                0.045 * loyal * np.where(f["card_holder"].to_numpy(), 1.0, 0.5),
                                0.03 * online])
    columns = []
    for c, name in enumerate(CATEGORIES):
        share = f[f"share_{name}"].to_numpy()
        for t in range(len(TYPES)):
            columns.append(share * response[:, t] * CATEGORY_RESPONSE[c] * JITTER[c, t])
    return np.column_stack(columns)


# --- meal_kit_weekly: repeat customers, hidden traits, high base, small effects -------------

PLANS = np.array(["2p", "4p", "veggie"], dtype=object)
MEAL_KIT: tuple[tuple[str, Kind], ...] = (
    ("weeks_subscribed", "numeric"), ("boxes_last_8w", "numeric"),
    ("coupon_uses_12m", "numeric"), ("app_user", "bool"), ("plan", "categorical"))


def _meal_kit_customers(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Hidden habit (the weekly order chance) and deal-seeking; the last 8 weeks' boxes and
    the year's coupon uses are their noisy traces."""
    habit = rng.normal(-0.5, 1.1, n)
    deal = rng.beta(1.2, 2.0, n)
    return pd.DataFrame({
        "weeks_subscribed": np.ceil(rng.exponential(40.0, n)),
        "boxes_last_8w": rng.binomial(8, expit(habit)).astype(float),
        "coupon_uses_12m": rng.poisson(0.5 + 5.0 * deal).astype(float),
        "app_user": rng.random(n) < 0.55,
        "plan": PLANS[rng.choice(3, n, p=[0.45, 0.35, 0.2])],
        "_habit": habit, "_deal": deal})


def _meal_kit_base(f: pd.DataFrame) -> np.ndarray:
    """5% to 55% by the hidden habit, about 28% on average."""
    return 0.05 + 0.50 * expit(f["_habit"].to_numpy())


def _meal_kit_uplift(f: pd.DataFrame) -> np.ndarray:
    """20% off (deal seekers), recipe preview (the others, veggie more), deadline push (app
    users; annoys the most regular), free dessert (family plans)."""
    deal, plan = f["_deal"].to_numpy(), f["plan"].to_numpy()
    regular = f["boxes_last_8w"].to_numpy() >= 7
    discount = 0.12 * deal ** 1.5
    preview = 0.02 * (1.0 - deal) * np.where(plan == "veggie", 1.5, 1.0)
    push = np.where(f["app_user"].to_numpy(), 0.015, 0.004) - 0.012 * regular
    dessert = np.where(plan == "4p", 0.035, 0.008)
    return np.column_stack([discount, preview, push, dessert])


# --- diy_cheap_default: a cheap offer for most, two costly ones for clear segments ----------

REGIONS = np.array(["north", "midlands", "south", "london", "wales_scotland"], dtype=object)
DIY: tuple[tuple[str, Kind], ...] = (
    ("trade_account", "bool"), ("homeowner", "bool"), ("months_since_move", "numeric"),
    ("projects_12m", "numeric"), ("kitchen_views_30d", "numeric"), ("spend_12m", "numeric"),
    ("region", "categorical"))


def _diy_customers(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """15% trade accounts (more projects, more spend), 60% homeowners; months since moving
    home; recent movers browse kitchens more."""
    trade = rng.random(n) < 0.15
    homeowner = rng.random(n) < 0.6
    moved = np.minimum(240.0, np.ceil(rng.exponential(60.0, n)))
    return pd.DataFrame({
        "trade_account": trade, "homeowner": homeowner, "months_since_move": moved,
        "projects_12m": rng.poisson(np.where(trade, 4.5, 1.2)).astype(float),
        "kitchen_views_30d": rng.poisson(0.5 + 4.0 * homeowner * np.exp(-moved / 12.0))
        .astype(float),
        "spend_12m": np.round(rng.lognormal(np.where(trade, 7.0, 5.0), 0.7), 2),
        "region": REGIONS[rng.choice(5, n, p=[0.25, 0.2, 0.25, 0.15, 0.15])]})


def _diy_base(f: pd.DataFrame) -> np.ndarray:
    """6% to ~18%, rising with projects."""
    return 0.06 + 0.12 * expit(-1.0 + 0.4 * f["projects_12m"].to_numpy())


def _diy_uplift(f: pd.DataFrame) -> np.ndarray:
    """Voucher (flat, a little more with projects), tool hire (trade x projects), kitchen
    design visit (homeowner x recent move x kitchen views), double points (flat)."""
    projects = f["projects_12m"].to_numpy()
    trade, owner = f["trade_account"].to_numpy(), f["homeowner"].to_numpy()
    views, moved = f["kitchen_views_30d"].to_numpy(), f["months_since_move"].to_numpy()
    voucher = 0.02 + 0.002 * np.minimum(projects, 5.0)
    hire = 0.004 + 0.07 * trade * np.minimum(projects / 4.0, 1.0)
    kitchen = 0.001 + 0.075 * owner * expit(views - 3.0) * np.exp(-moved / 24.0)
    return np.column_stack([voucher, hire, kitchen, np.full(len(f), 0.015)])


def _diy_logging(f: pd.DataFrame, n_offers: int) -> np.ndarray:
    """The design visit (offer 2) three times as often for homeowners."""
    weights = np.ones((len(f), n_offers + 1))
    weights[:, 3] = np.where(f["homeowner"].to_numpy(), 3.0, 1.0)
    return weights / weights.sum(axis=1, keepdims=True)


# --- outdoor_seasons: the month, seasonal offers, recency decay -----------------------------

CLIMATES = np.array(["cold", "mild", "warm"], dtype=object)
CLIMATE_WEIGHT = {"cold": 1.0, "mild": 0.6, "warm": 0.2}
OUTDOOR: tuple[tuple[str, Kind], ...] = (
    ("month", "numeric"), ("days_since_purchase", "numeric"), ("orders_24m", "numeric"),
    ("age", "numeric"), ("member", "bool"), ("climate", "categorical"))


def _season(month: np.ndarray, peak: float) -> np.ndarray:
    """1 at the peak month, 0 six months away, squared so the season is about four months."""
    return ((1.0 + np.cos(2.0 * np.pi * (month - peak) / 12.0)) / 2.0) ** 2


def _outdoor_customers(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """The month the customer was contacted (uniform), days since the last purchase (up to
    two years), orders, ages 18-80, members (40%), climate of the region."""
    return pd.DataFrame({
        "month": rng.integers(1, 13, n).astype(float),
        "days_since_purchase": np.minimum(730.0, np.ceil(rng.exponential(150.0, n))),
        "orders_24m": (1 + rng.poisson(1.5, n)).astype(float),
        "age": np.clip(np.round(rng.normal(42.0, 14.0, n)), 18, 80),
        "member": rng.random(n) < 0.4,
        "climate": CLIMATES[rng.choice(3, n, p=[0.3, 0.45, 0.25])]})


def _outdoor_base(f: pd.DataFrame) -> np.ndarray:
    """3% to 12%: higher in December and soon after a purchase."""
    return (0.03 + 0.04 * _season(f["month"].to_numpy(), 12.0)
            + 0.05 * np.exp(-f["days_since_purchase"].to_numpy() / 60.0))


def _outdoor_uplift(f: pd.DataFrame) -> np.ndarray:
    """Winter jackets (November x climate), summer early access (June x member), complete the
    look (3-week decay), win-back (lapsed 8+ months; slightly hurts the recent)."""
    month, days = f["month"].to_numpy(), f["days_since_purchase"].to_numpy()
    climate = f["climate"].map(CLIMATE_WEIGHT).to_numpy(dtype=float)
    member = f["member"].to_numpy()
    jacket = 0.06 * _season(month, 11.0) * climate
    summer = 0.05 * _season(month, 6.0) * np.where(member, 1.0, 0.4)
    look = 0.002 + 0.07 * np.exp(-days / 21.0)
    winback = 0.05 * expit((days - 240.0) / 40.0) - 0.005 * (days < 30.0)
    return np.column_stack([jacket, summer, look, winback])


def _outdoor_logging(f: pd.DataFrame, n_offers: int) -> np.ndarray:
    """Each seasonal offer three times as often in its season (jackets October to January,
    the summer sale May to July)."""
    month = f["month"].to_numpy()
    weights = np.ones((len(f), n_offers + 1))
    weights[:, 1] = np.where(np.isin(month, [10, 11, 12, 1]), 3.0, 1.0)
    weights[:, 2] = np.where(np.isin(month, [5, 6, 7]), 3.0, 1.0)
    return weights / weights.sum(axis=1, keepdims=True)


#: worlds written blind to the method from the paragraphs above, run once (`bench/worlds.py
#: --sealed`); never chosen on
SEALED = {d.name: d for d in (
    Design("electronics_sessions", (25.0, 40.0, 30.0, 35.0, 30.0), (0.2, 0.6, 0.05, 1.2, 0.4),
           _electronics_uplift, _electronics_logging, rows_per_arm=6_000,
           customers=_electronics_customers, columns=ELECTRONICS, base=_electronics_base,
           rows_per_customer=3.0, context=_electronics_context),
    Design("department_catalogue",
           tuple(m * k for m in CATEGORY_MARGIN for k in TYPE_MARGIN),
           tuple(c for _ in CATEGORIES for c in TYPE_COST), _department_uplift,
           rows_per_arm=2_000, customers=_department_customers, columns=DEPARTMENT,
           base=_department_base),
    Design("meal_kit_weekly", (20.0, 25.0, 25.0, 22.0), (1.2, 0.05, 0.02, 0.4),
           _meal_kit_uplift, rows_per_arm=7_000, customers=_meal_kit_customers,
           columns=MEAL_KIT, base=_meal_kit_base, rows_per_customer=6.0),
    Design("diy_cheap_default", (15.0, 60.0, 200.0, 15.0), (0.05, 3.0, 6.0, 0.3), _diy_uplift,
           _diy_logging, rows_per_arm=5_000, customers=_diy_customers, columns=DIY,
           base=_diy_base),
    Design("outdoor_seasons", (40.0, 20.0, 30.0, 25.0), (0.3, 0.1, 0.1, 0.5), _outdoor_uplift,
           _outdoor_logging, rows_per_arm=3_000, customers=_outdoor_customers, columns=OUTDOOR,
           base=_outdoor_base),
)}
