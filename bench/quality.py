"""`make bench-quality`: the real pipeline on the real Hillstrom experiment, against the policies
a CRM team would otherwise use.

For each seed: a stratified 70/30 split; `nba train` on the 70% (the real CLI, in-process);
`nba batch-score` on the held-out customers; then every policy's value on the held-out
randomized data by inverse propensity weighting, with a 95% bootstrap interval.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import hillstrom  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from common import markdown_table, publish, quiet_logging  # noqa: E402

from features import io  # noqa: E402
from features.build import build_matrix  # noqa: E402
from nba.cli import main as nba  # noqa: E402
from training import evaluate as ev  # noqa: E402
from training.response import predict_response  # noqa: E402

ARMS = ("control", "mens_email", "womens_email")
COST = 0.30  # per e-mail, in spend units: creative, send and incentive cost
HIGH_COST = 1.00  # a printed mailer, or an e-mail carrying a coupon: targeting must pay
BOOTSTRAP = 300
PUBLISHED_UPLIFT_AT_30 = 0.0661
SINGLE_ARMS = ("treat nobody", "mens e-mail to all", "womens e-mail to all")


@dataclass(frozen=True)
class Variant:
    """One training configuration: which outcome is `converted`, its unit value, the cost."""

    name: str
    converted: str
    cost: float
    test_size: float = 0.3


VARIANTS = (
    Variant("spend, c=0", "conversion", 0.0),
    Variant(f"spend, c={COST}", "conversion", COST),
    Variant(f"spend, c={HIGH_COST}", "conversion", HIGH_COST),
    Variant("visit, c=0", "visit", 0.0),
    Variant("visit, 50/50 split", "visit", 0.0, test_size=0.5),
)


def bootstrap_interval(contributions: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """95% percentile interval of the mean by resampling held-out rows."""
    idx = rng.integers(0, len(contributions), (BOOTSTRAP, len(contributions)))
    means = contributions[idx].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def run_variant(raw: pd.DataFrame, variant: Variant, seed: int, workdir: Path,
                learner: str = "s,t,x", train_flags: tuple[str, ...] = ()) -> dict:
    """Train on the split's training part, batch-score its holdout, evaluate every policy."""
    holdout = hillstrom.stratified_split(raw, variant.test_size, seed, variant.converted)
    train, test = raw[~holdout], raw[holdout]
    data = workdir / f"{variant.converted}-{variant.cost}-{variant.test_size}-{seed}"
    exposures = hillstrom.exposures(train, variant.converted)
    converters = exposures["converted"] == 1
    margin = (float(exposures.loc[converters, "revenue"].mean()) if variant.converted ==
              "conversion" else 1.0)  # value of one conversion in spend; one visit is one visit
    io.write_catalog(hillstrom.catalog(margin, variant.cost), data / io.OFFERS)
    io.write_parquet(exposures, data / io.EXPOSURES)
    io.write_parquet(hillstrom.customers(test), data / "holdout_customers.parquet")
    io.write_parquet(hillstrom.customers(train.head(50)), data / io.CUSTOMERS)
    uri = f"sqlite:///{data / 'mlflow.db'}"
    started = time.perf_counter()
    common = ["--tracking-uri", uri, "--data-dir", str(data)]
    if nba(["train", *common, "--artifact-root", str(data / "mlruns"), "--seed", str(seed),
            "--test-size", "0.2", "--promote", "--learner", learner, *train_flags]) != 0:
        raise SystemExit(f"nba train failed for {variant.name}, seed {seed}")
    # the bench measures the policy, not the experiment around it: the decision core's
    # holdout (5% of customers with no offer, for the incrementality report) is switched off
    os.environ["NBA_HOLDOUT_SHARE"] = "0"
    if nba(["batch-score", *common, "--customers", str(data / "holdout_customers.parquet"),
            "--out", str(data / "decisions.parquet"), "--limit", "1", "--channel",
            "email"]) != 0:
        raise SystemExit(f"nba batch-score failed for {variant.name}, seed {seed}")
    seconds = time.perf_counter() - started

    decisions = pd.read_parquet(data / "decisions.parquet").set_index("customer_id")
    chosen = decisions.loc[test["customer_id"], "offer_id"].fillna("control")
    learned = chosen.map({a: i for i, a in enumerate(ARMS)}).to_numpy()
    mlflow.set_tracking_uri(uri)
    policy = mlflow.pyfunc.load_model("models:/nba-policy@champion").unwrap_python_model().policy
    X = build_matrix(hillstrom.exposures(test, variant.converted), policy.spec)
    response = predict_response(policy.response, X, 3)
    raw_uplift = policy.raw_uplift(X)
    logged = test["treatment"].map({a: i for i, a in enumerate(ARMS)}).to_numpy()
    n = len(test)
    rng = np.random.default_rng(seed)
    policies = {
        "learned (ours)": learned,
        "treat nobody": np.zeros(n, dtype=int),
        "mens e-mail to all": np.ones(n, dtype=int),
        "womens e-mail to all": np.full(n, 2),
        "random": rng.integers(0, 3, n),
        "propensity-only ranking": 1 + response[:, 1:].argmax(axis=1),
    }
    outcomes = {"spend": test["spend"].to_numpy(float),
                "conversion": test["conversion"].to_numpy(float),
                "visit": test["visit"].to_numpy(float)}
    result: dict = {"seconds": seconds, "shrinkage": float(np.mean(policy.shrinkage)),
                    "policies": {}}
    reported = "visit" if variant.converted == "visit" else "spend"
    terms_of: dict[str, np.ndarray] = {}
    for name, arm in policies.items():
        row: dict[str, object] = {}
        for outcome, reward in outcomes.items():
            terms = ev.ipw_contributions(arm, logged, reward, np.full(n, 1.0 / 3.0))
            if outcome == "spend":  # net of contact cost: every e-mail sent costs c
                terms = terms - variant.cost * (arm > 0)
            row[outcome] = (terms.mean(), *bootstrap_interval(terms, rng))
            if outcome == reported:
                terms_of[name] = terms
        row["sent"] = float((arm > 0).mean())
        result["policies"][name] = row
    # paired on the same rows: the policies agree on most customers, so the difference is far
    # tighter than two separate intervals suggest
    best = max(SINGLE_ARMS, key=lambda name: terms_of[name].mean())
    gain = terms_of["learned (ours)"] - terms_of[best]
    result["vs_best_arm"] = (best, gain.mean(), *bootstrap_interval(gain, rng))
    for k, arm_name in enumerate(ARMS[1:]):
        rows = (logged == 0) | (logged == k + 1)
        treated = (logged[rows] == k + 1).astype(int)
        y = outcomes["visit" if variant.converted == "visit" else "conversion"][rows]
        result[f"qini_{arm_name}"] = ev.qini_coefficient(raw_uplift[rows, k], treated, y)
        result[f"auuc_{arm_name}"] = ev.auuc(raw_uplift[rows, k], treated, y)
    womens = (logged == 0) | (logged == 2)
    result["uplift_at_30_womens"] = ev.uplift_at(raw_uplift[womens, 1],
                                                 (logged[womens] == 2).astype(int),
                                                 outcomes["visit"][womens], 0.3)
    return result


def summarize(variant: Variant, runs: list[dict]) -> str:
    """Markdown for one variant: policy values averaged over seeds."""
    outcome = "visit" if variant.converted == "visit" else "spend"
    unit = "visits" if outcome == "visit" else "$ net spend" if variant.cost else "$ spend"
    lines = [f"### {variant.name}: {unit} per customer ({len(runs)} seeds, "
             f"{variant.test_size:.0%} holdout; IPW, 95% bootstrap interval averaged over seeds)",
             ""]
    nobody = np.mean([r["policies"]["treat nobody"][outcome][0] for r in runs])
    rows = []
    for name in runs[0]["policies"]:
        values = np.array([r["policies"][name][outcome] for r in runs])
        conversions = np.mean([r["policies"][name]["conversion"][0] for r in runs])
        sent = np.mean([r["policies"][name]["sent"] for r in runs])
        mean, low, high = values[:, 0].mean(), values[:, 1].mean(), values[:, 2].mean()
        rows.append([name, f"{mean:.4f}", f"[{low:.4f}, {high:.4f}]",
                     f"{values[:, 0].std():.4f}", f"{(mean - nobody) * 1000:+.1f}",
                     f"{conversions:.5f}", f"{sent:.0%}"])
    lines.append(markdown_table(
        ["policy", "value", "95% interval", "sd over seeds", "incremental per 1,000 vs nobody",
         "conversions per customer", "e-mailed"], rows))
    qini = " · ".join(f"Qini {a} {np.mean([r[f'qini_{a}'] for r in runs]):.4f}, AUUC "
                      f"{np.mean([r[f'auuc_{a}'] for r in runs]):.4f}" for a in ARMS[1:])
    gains = np.array([r["vs_best_arm"][1:] for r in runs])
    arms = sorted({r["vs_best_arm"][0] for r in runs})
    wins = int((gains[:, 1] > 0).sum())
    lines += ["", f"**Learned minus the best single arm** (in hindsight on each holdout: "
              f"{', '.join(arms)}), paired on the same customers: {gains[:, 0].mean():+.4f} per "
              f"customer, 95% interval [{gains[:, 1].mean():+.4f}, {gains[:, 2].mean():+.4f}] "
              f"(averaged over seeds); interval above zero in {wins} of {len(runs)} seeds, "
              f"point estimate above zero in {int((gains[:, 0] > 0).sum())}."]
    at30 = np.mean([r["uplift_at_30_womens"] for r in runs])
    shrink = ", ".join(f"{r['shrinkage']:.2f}" for r in runs)
    lines += ["", f"Learned model: {qini}; uplift@30% womens vs control on visit {at30:.4f} "
              f"(published: {PUBLISHED_UPLIFT_AT_30}); shrinkage chosen per seed: {shrink}; "
              f"train + batch-score {np.mean([r['seconds'] for r in runs]):.1f} s per seed.", ""]
    return "\n".join(lines)


def main() -> None:
    """Run every variant over the seeds and publish bench/results/quality.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hillstrom", type=Path, default=hillstrom.DEFAULT_PATH)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--learner", default=os.environ.get("NBA_LEARNER", "s,t,x"),
                        help="the menu's learners, as `nba train --learner` (default s,t,x)")
    parser.add_argument("--only", default=None,
                        help="run only the variants whose name contains this text")
    parser.add_argument("--nested-z", default=None,
                        help="as `nba train --nested-z` (the nested check on); results in "
                             "quality-nested_z<z>.md")
    args = parser.parse_args()
    flags = () if args.nested_z is None else ("--nested-z", args.nested_z)
    raw = hillstrom.load(args.hillstrom)
    started = time.perf_counter()
    sections = []
    with tempfile.TemporaryDirectory() as tmp:
        quiet_logging()
        for variant in VARIANTS:
            if args.only and args.only not in variant.name:
                continue
            runs = []
            for seed in range(args.seeds):
                runs.append(run_variant(raw, variant, seed, Path(tmp), args.learner, flags))
                print(f"  {variant.name}: seed {seed} done ({time.perf_counter() - started:.0f}"
                      " s)", file=sys.stderr, flush=True)
            sections.append(summarize(variant, runs))
    header = (f"## Policy quality on the Hillstrom e-mail experiment\n\n64,000 customers, "
              f"randomized 1/3 per arm; `nba train --learner {args.learner}"
              f"{' ' + ' '.join(flags) if flags else ''}` + "
              f"`nba batch-score` per seed; "
              f"whole run {time.perf_counter() - started:.0f} s.\n")
    suffix = f"-{re.sub(r'[^A-Za-z0-9]+', '_', args.only)}" if args.only else ""
    tag = args.learner.replace(",", "")
    name = "quality.md" if not args.only else f"quality-{tag}{suffix}.md"
    if flags:
        name = name.replace(".md", f"-nested_z{args.nested_z}.md")
    publish(name, header + "\n" + "\n".join(sections))


if __name__ == "__main__":
    main()
