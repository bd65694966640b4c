"""The embedded engine: split_tables and load_warehouse on DuckDB in one process, no JVM.

It runs the same two steps as the Spark jobs, from the same specs (contract/steps.ts), and writes the same lake
keys, manifests, ledger rows and results, so a run may be retried or replayed on either engine. The tables'
spec (afluente_spark/spec.py), the warehouse SQL (afluente_spark/sql.py) and the diagnosis of a bad record
(afluente_spark/diagnose.py) are the Spark jobs' own modules, which are plain Python.

    python -m afluente_embedded <split_tables|load_warehouse> --spec <uri> [--lake-root <uri>] …

session.py   one DuckDB database in a temp folder, with its memory limit, threads and spill folder
lake.py      file:// lake access (the runner stages an s3:// lake through a local folder)
lines.py     the validated parts' lines, in order, with their part, read by DuckDB
plan.py      split_tables as DuckDB SQL: typed reads, type checks, ranking, the tables' rows
split_job.py split_tables' flow: spec, checks, Parquet, manifest
warehouse.py one psycopg connection to PostgreSQL or Redshift, COPY from a file
load_job.py  load_warehouse's flow: staging, the merge transaction, the ledger, the result
cli.py       the shared main: arguments, exit code, the one-line failure
"""
