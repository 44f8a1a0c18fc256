"""The spark-submit entry point: `nba batch-score --engine spark` on the master spark-submit sets.

    spark-submit --master yarn --archives nba-env.tar.gz#env \\
        --conf spark.pyspark.python=./env/bin/python \\
        "$(python -c 'import nba.spark_submit as m; print(m.__file__)')" \\
        --customers hdfs:///crm/customers --out hdfs:///campaigns/tonight --channel email

Every argument is `nba batch-score`'s (docs/scale.md); the champion alias is resolved here, on
the driver, once.
"""

from __future__ import annotations

import sys

from nba.cli import main

if __name__ == "__main__":
    sys.exit(main(["batch-score", "--engine", "spark", *sys.argv[1:]]))
