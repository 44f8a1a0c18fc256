"""Champion / challenger: two policies evaluated on the same randomized holdout rows.

Everything above `compare_versions` is pure (frames and arrays in, dataclasses out). The
paired test works per row: both policies are scored on the same logged exposures, so the
difference of their per-row doubly robust (AIPW) scores has a much tighter interval than the
two separate intervals; the outcome model behind DR is cross-fitted on those rows (K folds by
customer), and every interval is clustered by customer. IPW is kept as a reported column.
"Worse beyond noise" means the 95% DR interval of candidate - champion lies entirely below 0.
`compare_versions` at the bottom is the I/O edge (registry and files).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from mlflow import MlflowClient

from features import io
from features.build import build_matrix
from stats import aipw_scores, ipw_scores, paired_difference, policy_terms
from training import evaluate as ev
from training import registry
from training.evaluate import Estimate
from training.split import holdout_mask

if TYPE_CHECKING:
    from training.package import Policy

# training.pipeline (causalml, LightGBM) and mlflow.pyfunc are imported where a policy is
# scored, so promote paths that evaluate nothing (reused evidence, errors) start fast.

log = logging.getLogger(__name__)

PASSED, FAILED, FORCED, FIRST = "passed", "failed", "forced", "first_champion"
ALREADY = "already_champion"  # nothing to do; no tags written
#: The policy-value metric of `evaluate_policy` that the gate compares (revenue per customer).
VALUE_METRIC = "policy_value_learned_uplift_policy"


class CompareError(RuntimeError):
    """The comparison cannot be run; the message says why."""


@dataclass(frozen=True)
class PairedComparison:
    """Two policies' values on the same rows and their paired difference (DR, or IPW when no
    outcome model was given); `ipw_difference` is the IPW difference reported beside it."""

    candidate: Estimate
    champion: Estimate
    difference: Estimate
    rows: int
    agreement: float
    ipw_difference: Estimate | None = None
    method: str = "DR"

    @property
    def worse(self) -> bool:
        """True when the candidate is worse beyond noise (the whole interval is below 0)."""
        return self.difference.high < 0

    @property
    def better(self) -> bool:
        """True when the candidate is better beyond noise (the whole interval is above 0)."""
        return self.difference.low > 0

    @property
    def verdict(self) -> str:
        """'better', 'worse' or 'not worse' (no difference beyond noise)."""
        return "worse" if self.worse else "better" if self.better else "not worse"


@dataclass(frozen=True)
class VersionComparison:
    """The comparison of two registered versions on one holdout, with their full metrics."""

    name: str
    candidate_version: str
    champion_version: str
    paired: PairedComparison
    candidate_metrics: dict[str, float]
    champion_metrics: dict[str, float]
    data_sha256: str
    seed: int
    test_size: float


def mean_estimate(values: np.ndarray, clusters: np.ndarray | None = None) -> Estimate:
    """stats.mean_estimate, refusing fewer than 2 rows (no interval to compare)."""
    if len(values) < 2:
        raise CompareError(f"need at least 2 rows to compare, got {len(values)}")
    return ev.mean_estimate(values, clusters)


def paired_comparison(candidate: np.ndarray, champion: np.ndarray, logged: np.ndarray,
                      reward: np.ndarray, propensity: np.ndarray, *,
                      arms: Sequence[str] | None = None, mu: np.ndarray | None = None,
                      clusters: np.ndarray | None = None) -> PairedComparison:
    """Both policies' chosen arms (labels) on the same logged rows -> values and the paired
    difference of `reward` per row.

    With `mu` (cross-fitted predictions of the reward under each arm of `arms`, shape
    (rows, arms)) the values are doubly robust; without, IPW. Intervals are clustered by
    `clusters` (customer ids) when given.
    """
    if not len(candidate) == len(champion) == len(logged) == len(reward) == len(propensity):
        raise CompareError("candidate, champion and logged arrays must have the same length")
    if len(logged) < 2:
        raise CompareError(f"need at least 2 rows to compare, got {len(logged)}")
    labels = list(arms) if arms is not None else sorted(
        set(np.asarray(logged)) | set(np.asarray(candidate)) | set(np.asarray(champion)))
    code = {label: k for k, label in enumerate(labels)}
    try:
        cand, champ, log_codes = (np.array([code[a] for a in arr], dtype=np.int64)
                                  for arr in (candidate, champion, logged))
    except KeyError as e:
        raise CompareError(f"arm {e.args[0]!r} is not one of {labels}") from None
    ipw = ipw_scores(log_codes, propensity, reward, len(labels))
    dr = ipw if mu is None else aipw_scores(log_codes, propensity, reward, mu)
    agreement = float(np.mean(cand == champ))
    try:
        values = [mean_estimate(policy_terms(arm, dr), clusters) for arm in (cand, champ)]
        difference = paired_difference(policy_terms(cand, dr), policy_terms(champ, dr),
                                       clusters)
        ipw_difference = paired_difference(policy_terms(cand, ipw), policy_terms(champ, ipw),
                                           clusters)
    except ValueError as e:
        raise CompareError(str(e)) from None
    return PairedComparison(values[0], values[1], difference, len(cand), agreement,
                            ipw_difference, "IPW" if mu is None else "DR")


def gate_status(paired: PairedComparison | None, force: bool) -> str:
    """validation_status of a champion promotion: first_champion, passed, forced or failed."""
    if paired is None:
        return FIRST
    if not paired.worse:
        return PASSED
    return FORCED if force else FAILED


def chosen_offers(policy: Policy, frame: pd.DataFrame) -> np.ndarray:
    """The arm label (control label or offer id) the policy picks for every row of `frame`."""
    from training.pipeline import loyalty_tiers, policy_arms

    uplift, _, _ = policy.score(build_matrix(frame, policy.spec))
    tiers = loyalty_tiers(frame)
    labels = np.array([policy.catalog.control_label, *policy.catalog.offer_ids], dtype=object)
    return labels[policy_arms(policy, uplift, tiers)]


#: K of the cross-fitted outcome model behind the gate's DR values
COMPARE_FOLDS = 3


def compare_policies(candidate: Policy, champion: Policy, frame: pd.DataFrame,
                     seed: int = 0) -> PairedComparison:
    """Paired DR comparison of two Policy objects on logged rows (revenue per customer),
    clustered by customer, with an outcome model cross-fitted on those rows."""
    from training.crossfit import folds, reward_predictions
    from training.settings import BoosterParams

    if "propensity" not in frame:
        raise CompareError("exposures have no propensity column; IPW needs it")
    arms = [candidate.catalog.control_label, *candidate.catalog.offer_ids]
    code = {label: k for k, label in enumerate(arms)}
    logged = frame["treatment"].astype(object).to_numpy()
    unknown = set(logged) - set(code)
    if unknown:
        raise CompareError(f"exposures hold arm(s) {sorted(unknown)[:3]} the candidate's "
                           "catalog does not know")
    customers = frame["customer_id"].astype(str).to_numpy()
    mu = None
    if len(np.unique(customers)) >= COMPARE_FOLDS:
        mu = reward_predictions(build_matrix(frame, candidate.spec),
                                np.array([code[a] for a in logged]),
                                frame["revenue"].to_numpy(dtype=np.float64),
                                folds(customers, COMPARE_FOLDS, seed), n_arms=len(arms),
                                params=BoosterParams(
                                    categorical=candidate.spec.categorical_columns),
                                seed=seed)
    return paired_comparison(chosen_offers(candidate, frame), chosen_offers(champion, frame),
                             logged, frame["revenue"].to_numpy(), frame["propensity"].to_numpy(),
                             arms=arms, mu=mu, clusters=customers)


def _interval(e: Estimate) -> str:
    return f"{e.value:.3f} [{e.low:.3f}, {e.high:.3f}]"


#: Metrics of `evaluate_policy` shown under the paired policy value, when present.
TABLE_METRICS = ("policy_net_value_learned_uplift_policy",
                 "incremental_profit_learned_uplift_policy", "learned_treated_share",
                 "response_auc")


def side_by_side(comparison: VersionComparison) -> pd.DataFrame:
    """One row per metric: candidate, champion and candidate - champion."""
    p, cand, champ = comparison.paired, comparison.candidate_metrics, comparison.champion_metrics
    rows = [(f"policy value, revenue/customer ({p.method}, 95% CI by customer)",
             _interval(p.candidate), _interval(p.champion), _interval(p.difference))]
    if p.ipw_difference is not None and p.method != "IPW":
        rows.append(("  same, IPW: difference", "", "", _interval(p.ipw_difference)))
    keys = [k for k in TABLE_METRICS if k in cand or k in champ]
    keys += sorted(k for k in set(cand) | set(champ) if k.startswith("qini_"))
    for key in keys:
        a, b = cand.get(key, float("nan")), champ.get(key, float("nan"))
        rows.append((key, f"{a:.4f}", f"{b:.4f}", f"{a - b:+.4f}"))
    return pd.DataFrame(rows, columns=["metric", f"candidate v{comparison.candidate_version}",
                                       f"champion v{comparison.champion_version}",
                                       "difference"])


def format_table(table: pd.DataFrame) -> str:
    """Plain-text table: first column left-aligned, the others right-aligned."""
    cells = [list(table.columns), *table.astype(str).values.tolist()]
    widths = [max(len(row[j]) for row in cells) for j in range(len(table.columns))]
    return "\n".join("  ".join(cell.ljust(w) if j == 0 else cell.rjust(w)
                               for j, (cell, w) in enumerate(zip(row, widths, strict=True)))
                     for row in cells)


def report(comparison: VersionComparison) -> str:
    """The side-by-side table with a header and the verdict, ready to print."""
    p = comparison.paired
    return (f"{comparison.name}: candidate version {comparison.candidate_version} vs champion "
            f"version {comparison.champion_version} on {p.rows:,} holdout rows (seed "
            f"{comparison.seed}, test_size {comparison.test_size}); the policies choose the "
            f"same arm on {p.agreement:.1%} of rows\n{format_table(side_by_side(comparison))}\n"
            f"verdict: {verdict_line(p)}")


def verdict_line(p: PairedComparison) -> str:
    """One line: the verdict with the numbers behind it."""
    return (f"candidate is {p.verdict} than champion"
            f"{' beyond noise' if p.verdict != 'not worse' else ''}: {evidence_line(p)}")


def evidence_line(p: PairedComparison) -> str:
    """The numbers behind a verdict: both values and the paired difference with its interval."""
    return (f"{p.method} policy value {p.candidate.value:.3f} vs {p.champion.value:.3f} "
            f"revenue per customer, difference {p.difference.value:+.3f} (95% CI "
            f"{p.difference.low:+.3f} to {p.difference.high:+.3f}) on {p.rows:,} paired holdout "
            "rows, intervals clustered by customer")


def validation_tags(comparison: VersionComparison | None, status: str) -> dict[str, str]:
    """Model-version tags recording a promotion decision and its evidence."""
    tags = {"validation_status": status,
            "validated_at": datetime.now(UTC).isoformat(timespec="seconds")}
    if comparison is None:
        return tags
    p = comparison.paired
    return tags | {
        "compared_to": comparison.champion_version,
        "candidate_policy_value": f"{p.candidate.value:.6g}",
        "champion_policy_value": f"{p.champion.value:.6g}",
        "policy_value_difference": f"{p.difference.value:.6g}",
        "difference_ci_low": f"{p.difference.low:.6g}",
        "difference_ci_high": f"{p.difference.high:.6g}",
        "validation_method": p.method,
        "validation_rows": str(p.rows),
        "validation_exposures_sha256": comparison.data_sha256,
    }


def recorded_difference(tags: dict[str, str], champion: str, data_sha256: str | None
                        ) -> Estimate | None:
    """The paired difference recorded in a version's tags against `champion` on these data."""
    if tags.get("compared_to") != champion or not data_sha256 \
            or tags.get("validation_exposures_sha256") != data_sha256:
        return None
    try:
        return Estimate(float(tags["policy_value_difference"]), float(tags["difference_ci_low"]),
                        float(tags["difference_ci_high"]))
    except (KeyError, ValueError):
        return None


# ------------------------------------------------------------------ I/O edge


def _split_params(client: MlflowClient, run_id: str | None, name: str,
                  version: str) -> tuple[int, float]:
    """The candidate run's logged `seed` and `test_size`."""
    if not run_id:
        raise CompareError(f"{name} version {version} has no run; cannot recover its holdout")
    params = client.get_run(run_id).data.params
    try:
        return int(params["seed"]), float(params["test_size"])
    except (KeyError, ValueError):
        raise CompareError(f"run {run_id} of {name} version {version} has no usable 'seed' and "
                           "'test_size' params; cannot recover its holdout split") from None


def _load_policy(name: str, version: str) -> Policy:
    return registry.load_policy(f"models:/{name}/{version}")


def compare_versions(client: MlflowClient, name: str, candidate: str, champion: str,
                     data_dir: Path) -> VersionComparison:
    """Load both versions and the candidate's holdout from `data_dir`, evaluate and compare."""
    from training.pipeline import evaluate_policy

    cand_version = registry.get_version(client, name, candidate)
    registry.get_version(client, name, champion)
    seed, test_size = _split_params(client, cand_version.run_id, name, candidate)
    catalog = io.read_catalog(data_dir / io.OFFERS)
    exposures = io.read_exposures(data_dir / io.EXPOSURES, catalog)
    is_test = holdout_mask(exposures["customer_id"], test_size, seed)
    train, test = exposures[~is_test], exposures[is_test]
    log.info("comparing %s version %s with version %s on %d holdout rows", name, candidate,
             champion, len(test))
    policies = {v: _load_policy(name, v) for v in dict.fromkeys((candidate, champion))}
    for version, policy in policies.items():
        known = {policy.catalog.control_label, *policy.catalog.offer_ids}
        unknown = set(test["treatment"].unique()) - known
        if unknown:
            raise CompareError(f"{name} version {version} does not know offer(s) "
                               f"{sorted(unknown)[:3]} of {data_dir / io.EXPOSURES}")
    metrics = {v: evaluate_policy(p, train, test).metrics for v, p in policies.items()}
    paired = compare_policies(policies[candidate], policies[champion], test, seed)
    return VersionComparison(name, str(candidate), str(champion), paired, metrics[candidate],
                             metrics[champion], io.file_sha256(data_dir / io.EXPOSURES), seed,
                             test_size)


@dataclass(frozen=True)
class Promotion:
    """The outcome of a gated champion promotion; `evidence` is one line when reused."""

    status: str
    previous: str | None
    comparison: VersionComparison | None
    evidence: str | None = None

    @property
    def promoted(self) -> bool:
        """True when the champion alias now points at the candidate because of this call."""
        return self.status in (PASSED, FORCED, FIRST)


def promote_champion(client: MlflowClient, name: str, version: str, data_dir: Path,
                     force: bool = False) -> Promotion:
    """The gate: compare with the champion, tag the outcome, move the alias unless refused.

    With `force`, a comparison already recorded on the version against the same champion and
    the same exposures file (typically by the refused attempt) is reused, not recomputed.
    """
    version = str(version)
    found = registry.get_version(client, name, version)
    champion = registry.get_alias(client, name)
    if champion is not None and champion.version == version:
        return Promotion(ALREADY, version, None)
    exposures = data_dir / io.EXPOSURES
    recorded = (recorded_difference(found.tags or {}, champion.version,
                                    io.file_sha256(exposures) if exposures.exists() else None)
                if force and champion is not None else None)
    if recorded is not None:
        assert champion is not None  # a recorded comparison needs a champion
        status = FORCED if recorded.high < 0 else PASSED
        registry.tag_version(client, name, version, validation_tags(None, status))
        registry.set_alias(client, name, version)
        evidence = (f"reused the comparison recorded on version {version} against champion "
                    f"version {champion.version} on the same exposures: difference "
                    f"{recorded.value:+.3f} (95% CI {recorded.low:+.3f} to {recorded.high:+.3f})")
        return Promotion(status, champion.version, None, evidence)
    comparison = (None if champion is None
                  else compare_versions(client, name, version, champion.version, data_dir))
    status = gate_status(comparison.paired if comparison else None, force)
    registry.tag_version(client, name, version, validation_tags(comparison, status))
    if status != FAILED:  # unless another promotion moved the champion meanwhile
        registry.set_alias(client, name, version,
                           expected=champion.version if champion else None)
    return Promotion(status, champion.version if champion else None, comparison)
