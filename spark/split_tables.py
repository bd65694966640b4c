"""EMR step / local spark-submit entry point: split a run's validated records into curated Parquet tables.

    spark-submit [--py-files afluente_spark.zip] split_tables.py --spec <uri> [--lake-root <uri>]

The logic is in afluente_spark (split_job.py); see spark/README.md.
"""
import sys

from afluente_spark.cli import main
from afluente_spark.split_job import JOB, run_split

if __name__ == "__main__":
    sys.exit(main(JOB, run_split))
