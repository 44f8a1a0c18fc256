"""The one decision: eligibility, stock, launch floor, holdout and exploration, contact caps,
ranking and reasons as data.

Pure: no Flask, no database, no MLflow (NumPy and `features` only). `decisioning.core.decide`
is the one entry function; the service, `nba batch-score`, `nba decide` and the MLflow model
all call it (through `training.package.Policy`), and nothing else decides.
"""
