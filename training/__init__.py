"""The training pipeline: contract data in, one registered MLflow decision policy out."""
