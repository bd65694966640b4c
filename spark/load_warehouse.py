"""EMR step / local spark-submit entry point: merge a transform's curated tables into the warehouse.

    spark-submit [--py-files afluente_spark.zip] --jars <jdbc driver> load_warehouse.py --spec <uri> [--lake-root <uri>]

The logic is in afluente_spark (load_job.py); see spark/README.md.
"""
import sys

from afluente_spark.cli import main
from afluente_spark.load_job import JOB, run_load

if __name__ == "__main__":
    sys.exit(main(JOB, run_load))
