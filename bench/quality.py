"""`make bench-quality`: the real pipeline on the real Hillstrom experiment, against the policies
a CRM team would otherwise use.

For each variant (outcome x contact cost) and seed: a stratified 70/30 split; `nba train` on the
70% (the real CLI, in-process); `nba batch-score` on the held-out customers; then every policy's
value on the held-out randomized data by inverse propensity weighting, with a 95% bootstrap
interval. The outcome is spend, conversion or visit; c is the cost of one e-mail in that
outcome's own unit ($, conversions, visits), at c = 0, 0.30 and 1.00. The results end with issue
12's Hillstrom targets marked met / not met: never worse than the best arm beyond noise (per
variant and seed, paired) and uplift@30% >= 0.0661 (the published scikit-uplift figure).
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
# per e-mail, in the outcome's unit. In spend: 0.30 is creative, send and incentive; 1.00 a
# printed mailer or a coupon, where targeting must pay. In visits or conversions either exceeds
# any plausible uplift of one e-mail, so treat-nobody is the best arm and the check is that the
# policy learns to e-mail (almost) nobody.
COSTS = (0.0, 0.30, 1.00)
OUTCOMES = ("spend", "visit", "conversion")
UNITS = {"spend": "$ of spend", "visit": "visits", "conversion": "conversions"}
BOOTSTRAP = 300
PUBLISHED_UPLIFT_AT_30 = 0.0661
SINGLE_ARMS = ("treat nobody", "mens e-mail to all", "womens e-mail to all")


@dataclass(frozen=True)
class Variant:
    """One training configuration: the outcome trained for and judged on, the cost per e-mail
    in that outcome's unit, the holdout share."""

    name: str
    outcome: str
    cost: float
    test_size: float = 0.3

    @property
    def converted(self) -> str:
        """The binary label trained on: spend is modelled as conversion x mean order value."""
        return "visit" if self.outcome == "visit" else "conversion"


VARIANTS = (
    *(Variant(f"{outcome}, c={cost:.2f}", outcome, cost) for outcome in OUTCOMES
      for cost in COSTS),
    Variant("visit, 50/50 split", "visit", 0.0, test_size=0.5),
)
#: the split scikit-uplift's uplift@30% is published for (womens e-mail vs control, visit)
UPLIFT_VARIANT = "visit, 50/50 split"


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
    data = workdir / f"{variant.outcome}-{variant.cost}-{variant.test_size}-{seed}"
    exposures = hillstrom.exposures(train, variant.converted)
    converters = exposures["converted"] == 1
    # one conversion is worth the mean order in spend; otherwise one unit is one unit
    margin = (float(exposures.loc[converters, "revenue"].mean()) if variant.outcome == "spend"
              else 1.0)
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
                    "candidate": str(policy.meta.get("candidate", "?")), "policies": {}}
    terms_of: dict[str, np.ndarray] = {}
    for name, arm in policies.items():
        row: dict[str, object] = {}
        for outcome, reward in outcomes.items():
            terms = ev.ipw_contributions(arm, logged, reward, np.full(n, 1.0 / 3.0))
            row[outcome] = (terms.mean(), *bootstrap_interval(terms, rng))
            if outcome == variant.outcome:  # net of contact cost: every e-mail sent costs c
                terms_of[name] = terms - variant.cost * (arm > 0)
                row["net"] = (terms_of[name].mean(), *bootstrap_interval(terms_of[name], rng))
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
        y = outcomes[variant.converted][rows]
        result[f"qini_{arm_name}"] = ev.qini_coefficient(raw_uplift[rows, k], treated, y)
        result[f"auuc_{arm_name}"] = ev.auuc(raw_uplift[rows, k], treated, y)
    womens = (logged == 0) | (logged == 2)
    result["uplift_at_30_womens"] = ev.uplift_at(raw_uplift[womens, 1],
                                                 (logged[womens] == 2).astype(int),
                                                 outcomes["visit"][womens], 0.3)
    return result


def summarize(variant: Variant, runs: list[dict]) -> str:
    """Markdown for one variant: policy values averaged over seeds."""
    unit = UNITS[variant.outcome]
    cost = (f", net of c = {variant.cost:.2f} {unit} per e-mail (c in the outcome's own unit)"
            if variant.cost else "")
    lines = [f"### {variant.name}: {unit} per customer{cost} ({len(runs)} seeds, "
             f"{variant.test_size:.0%} holdout; IPW, 95% bootstrap interval averaged over seeds)",
             ""]
    nobody = np.mean([r["policies"]["treat nobody"]["net"][0] for r in runs])
    rows = []
    for name in runs[0]["policies"]:
        values = np.array([r["policies"][name]["net"] for r in runs])
        conversions = np.mean([r["policies"][name]["conversion"][0] for r in runs])
        sent = np.mean([r["policies"][name]["sent"] for r in runs])
        mean, low, high = values[:, 0].mean(), values[:, 1].mean(), values[:, 2].mean()
        rows.append([name, f"{mean:.4f}", f"[{low:.4f}, {high:.4f}]",
                     f"{values[:, 0].std():.4f}", f"{(mean - nobody) * 1000:+.1f}",
                     f"{conversions:.5f}", f"{sent:.0%}"])
    lines.append(markdown_table(
        ["policy", "value", "95% interval", "sd over seeds", "incremental per 1,000 vs nobody",
         "conversions per customer (gross)", "e-mailed"], rows))
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
    served = ", ".join(f"{r['candidate']} (shrinkage {r['shrinkage']:.2f})" for r in runs)
    lines += ["", f"Learned model: {qini}; uplift@30% womens vs control on visit {at30:.4f} "
              f"(published: {PUBLISHED_UPLIFT_AT_30}); served per seed (learner/capacity/rule): "
              f"{served}; "
              f"train + batch-score {np.mean([r['seconds'] for r in runs]):.1f} s per seed.", ""]
    return "\n".join(lines)


def seeds_worse(gains: np.ndarray) -> int:
    """Seeds whose paired 95% interval of learned minus the best arm lies entirely below 0.

    `gains` holds one (mean, low, high) row per seed; such a seed is worse beyond noise.
    """
    return int((np.asarray(gains, dtype=float).reshape(-1, 3)[:, 2] < 0).sum())


def uplift_target(values: list[float], published: float = PUBLISHED_UPLIFT_AT_30
                  ) -> tuple[float, int, bool]:
    """(mean over seeds, seeds below `published`, met): met when the mean reaches it, the
    published figure being one split's number, not a per-seed floor."""
    mean = float(np.mean(values))
    return mean, int(sum(v < published for v in values)), mean >= published


def targets(results: list[tuple[Variant, list[dict]]]) -> str:
    """Markdown for issue 12's Hillstrom targets, from each variant's runs (one dict a seed)."""
    rows, failing = [], 0
    for variant, runs in results:
        gains = np.array([r["vs_best_arm"][1:] for r in runs])
        worse = seeds_worse(gains)
        failing += worse > 0
        arms = ", ".join(sorted({r["vs_best_arm"][0] for r in runs}))
        sent = np.mean([r["policies"]["learned (ours)"]["sent"] for r in runs])
        rows.append([variant.name, arms, f"{gains[:, 0].mean():+.4f}",
                     f"[{gains[:, 1].mean():+.4f}, {gains[:, 2].mean():+.4f}]", f"{sent:.0%}",
                     f"{worse} of {len(runs)}", "met" if not worse else "NOT met"])
    lines = ["## Issue 12's Hillstrom targets", "",
             "Learned minus the best arm in hindsight (the best single arm on each holdout, by "
             "the variant's outcome net of c per e-mail), paired on the same customers, per "
             "customer in the outcome's unit; mean and 95% bootstrap interval averaged over "
             "seeds. A seed is worse beyond noise when its own interval lies entirely below 0.",
             "",
             markdown_table(["variant", "best arm", "learned - best arm", "95% interval",
                             "learned e-mails", "seeds worse beyond noise",
                             "never worse beyond noise"], rows), ""]
    if rows:
        lines.append(f"- never worse than the best arm beyond noise, every variant run: "
                     f"**{'met' if not failing else 'NOT met'}** ({failing} of {len(rows)} "
                     "variants have a seed below)")
    at30 = [[r["uplift_at_30_womens"] for r in runs] for variant, runs in results
            if variant.name == UPLIFT_VARIANT]
    if at30:
        mean, below, met = uplift_target(at30[0])
        lines.append(f"- uplift@30% (womens e-mail vs control on visit, '{UPLIFT_VARIANT}') "
                     f"{mean:.4f} >= {PUBLISHED_UPLIFT_AT_30} (published, scikit-uplift): "
                     f"**{'met' if met else 'NOT met'}** (mean over {len(at30[0])} seeds; "
                     f"{below} below)")
    else:
        lines.append(f"- uplift@30% >= {PUBLISHED_UPLIFT_AT_30}: not run (it is measured on "
                     f"the '{UPLIFT_VARIANT}' variant)")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run every variant over the seeds and publish bench/results/quality.md."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="variants (--only matches part of a name):\n"
               + "".join(f"  {v.name}\n" for v in VARIANTS)
               + "results: bench/results/quality.md (with --only: quality-<learners>-<text>.md)")
    parser.add_argument("--hillstrom", type=Path, default=hillstrom.DEFAULT_PATH,
                        help="the Hillstrom CSV (default %(default)s)")
    parser.add_argument("--seeds", type=int, default=5,
                        help="seeds (splits) per variant, from 0 (default 5)")
    parser.add_argument("--learner", default=os.environ.get("NBA_LEARNER", "s,t,x"),
                        help="the menu's learners, as `nba train --learner` (default s,t,x)")
    parser.add_argument("--only", default=None,
                        help="run only the variants whose name contains this text, "
                             "e.g. 'visit' or 'c=0.30'")
    parser.add_argument("--nested-z", default=None,
                        help="as `nba train --nested-z` (the nested check on); results in "
                             "quality-nested_z<z>.md")
    args = parser.parse_args()
    flags = () if args.nested_z is None else ("--nested-z", args.nested_z)
    raw = hillstrom.load(args.hillstrom)
    started = time.perf_counter()
    results: list[tuple[Variant, list[dict]]] = []
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
            results.append((variant, runs))
    if not results:
        raise SystemExit(f"--only {args.only!r} matches no variant; see --help")
    sections = [summarize(variant, runs) for variant, runs in results]
    header = (f"## Policy quality on the Hillstrom e-mail experiment\n\n64,000 customers, "
              f"randomized 1/3 per arm; `nba train --learner {args.learner}"
              f"{' ' + ' '.join(flags) if flags else ''}` + "
              f"`nba batch-score` per seed; `bench/quality.py --seeds {args.seeds}"
              f"{f' --only {args.only!r}' if args.only else ''}`, "
              f"whole run {time.perf_counter() - started:.0f} s.\n")
    suffix = f"-{re.sub(r'[^A-Za-z0-9]+', '_', args.only)}" if args.only else ""
    tag = args.learner.replace(",", "")
    name = "quality.md" if not args.only else f"quality-{tag}{suffix}.md"
    if flags:
        name = name.replace(".md", f"-nested_z{args.nested_z}.md")
    publish(name, header + "\n" + "\n".join(sections) + "\n" + targets(results))


if __name__ == "__main__":
    main()
