"""Refit benchmark: the chosen candidate's refit on all rows (and the response/value models),
timed per LightGBM threading variant, quiet and under `--load`.

Run from the repo root: `nice .venv/bin/python bench/bench_refit.py [--load] [--repeats N]`.
Each variant runs in a fresh child process, so OMP_WAIT_POLICY is set before libgomp starts
(it reads the variable once). Variants, alternated in each repeat:
  n_jobs=2           today (BoosterParams.n_jobs)
  n_jobs=1           one LightGBM thread for the refit
  n_jobs=2 passive   today's threads, OMP_WAIT_POLICY=PASSIVE (idle threads sleep, not spin)
  n_jobs=1 passive   both
Each child also prints a digest of the refit policy's scores on the training rows, so identical
fits are checked across variants. No cross-fitting: the candidate is `--candidate` (default
x/base/full, the one `nba train` chose on this data in bench/results/train*.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from common import markdown_table, publish, quiet_logging

SEED = 7
CUSTOMERS = 50_000
EXPOSURES = 200_000
VARIANTS = {"n_jobs=2": (2, False), "n_jobs=1": (1, False),
            "n_jobs=2 passive": (2, True), "n_jobs=1 passive": (1, True)}


def measure(n_jobs: int, candidate: str) -> dict:
    """Generate demo data and time `fit_models` for `candidate` with `n_jobs` threads."""
    import numpy as np
    import pyarrow.parquet as pq

    from features import io
    from features.build import build_matrix, infer_spec
    from features.schema import feature_columns
    from nba import demo
    from training import first_visit
    from training.pipeline import fit_models, population_uplift
    from training.response import predict_response
    from training.select import Candidate
    from training.settings import TrainSettings

    quiet_logging()
    learner, capacity, rule = candidate.split("/")
    with tempfile.TemporaryDirectory(prefix="nba-bench-refit-") as tmp:
        root = Path(tmp)
        demo.write(demo.generate(CUSTOMERS, EXPOSURES, SEED), root / "data")
        settings = TrainSettings(data_dir=root / "data")
        settings = replace(settings, params=replace(settings.params, n_jobs=n_jobs))
        catalog = io.read_catalog(root / "data" / io.OFFERS)
        exposures, _ = first_visit.split(io.read_exposures(root / "data" / io.EXPOSURES,
                                                           catalog))
        kinds = feature_columns(pq.read_schema(root / "data" / io.EXPOSURES), io.EXPOSURES)
        spec = infer_spec(exposures, kinds)
        marks: list[float] = []

        def mark(message: str) -> None:
            marks.append(time.perf_counter())

        started = time.perf_counter()
        policy = fit_models(exposures, spec, catalog, settings,
                            Candidate(learner, capacity, rule),
                            population_uplift(exposures, catalog), mark)  # type: ignore[arg-type]
        ended = time.perf_counter()
        X = build_matrix(exposures.head(20_000), spec)
        # every fitted model's output: the uplift learner's, the response and the value model's
        parts = [*policy.score(X, 1),
                 predict_response(policy.response, X, len(catalog.offers) + 1, 1),
                 policy.value.predict(X, num_threads=1)]
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(p, dtype=np.float64).tobytes()
                                     for p in parts)).hexdigest()
    return {"refit_s": marks[1] - marks[0], "response_value_s": ended - marks[1],
            "total_s": ended - started, "digest": digest[:12]}


def run_child(variant: str, candidate: str) -> dict:
    """`measure` in a fresh interpreter with the variant's environment."""
    n_jobs, passive = VARIANTS[variant]
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    out = subprocess.run([sys.executable, __file__, "--one", str(n_jobs), "--candidate",
                          candidate], check=True, stdout=subprocess.PIPE, text=True,
                         env=env).stdout
    result: dict = json.loads(out.strip().splitlines()[-1])
    print(f"{variant}: refit {result['refit_s']:.1f} s, response+value "
          f"{result['response_value_s']:.1f} s, digest {result['digest']}", file=sys.stderr,
          flush=True)
    return result


def main() -> None:
    """Alternate the variants, then publish medians and ratios to n_jobs=2."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--load", action="store_true", help="one busy loop meanwhile")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--candidate", default="x/base/full")
    parser.add_argument("--out", default=None, help="results file name (default refit.md)")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one, args.candidate)))
        return
    from bench_train import busy_loop

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    started = time.perf_counter()
    load_start = os.getloadavg()[0]
    with busy_loop(args.load):
        for _ in range(max(1, args.repeats)):
            for v in variants:
                runs[v].append(run_child(v, args.candidate))
    wall = time.perf_counter() - started

    def median(values: list[float]) -> float:
        ordered = sorted(values)
        return ordered[(len(ordered) - 1) // 2]

    peer = median([r["refit_s"] for r in runs[variants[0]]])
    peer_rv = median([r["response_value_s"] for r in runs[variants[0]]])
    rows = []
    for v in variants:
        refit = median([r["refit_s"] for r in runs[v]])
        rv = median([r["response_value_s"] for r in runs[v]])
        rows.append((v, " / ".join(f"{r['refit_s']:.1f}" for r in runs[v]), f"{refit:.1f}",
                     f"{refit / peer:.2f}x", f"{rv:.1f}", f"{rv / peer_rv:.2f}x",
                     ", ".join(sorted({r["digest"] for r in runs[v]}))))
    load_end = os.getloadavg()[0]
    markdown = "\n".join([
        "## Refit threads",
        "",
        f"Candidate {args.candidate} refit on all rows of the demo data ({EXPOSURES:,} "
        f"exposures, seed {SEED}), then the response and value models; "
        f"{'one busy loop running (--load)' if args.load else 'no added load'}; load average "
        f"{load_start:.1f} at the start, {load_end:.1f} at the end; "
        f"{max(1, args.repeats)} repeat(s), {wall:.0f} s in all. Ratios to `{variants[0]}` in "
        f"the same run (medians, the lower of an even count).",
        "",
        markdown_table(("variant", "refit s, each run", "refit s", "vs peer",
                        "response+value s", "vs peer", "scores digest"), rows),
        "",
    ])
    publish(args.out or ("refit_load.md" if args.load else "refit_quiet.md"), markdown)


if __name__ == "__main__":
    main()
