"""The embedded engine's main, `python -m afluente_embedded`, exactly as the service's embedded runner runs it
(PYTHONPATH=spark): the same contract as the Spark mains (test_mains.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import pytest
from helpers import DT, SOURCE, demo_tables, load_spec, manifest_key, order, staging_tables, transform_spec

from afluente_embedded.load_job import run_load
from afluente_embedded.split_job import run_split
from afluente_spark.errors import StepError

SPARK_DIR = Path(__file__).resolve().parents[1]


def embedded(job: str, spec_uri: str, lake_root: Optional[str] = None, **env: str) -> subprocess.CompletedProcess:
    command: List[str] = [sys.executable, "-m", "afluente_embedded", job, "--spec", spec_uri,
                          "--step-name", f"afluente run=5 job=51 {job}", "--memory-limit", "256MB", "--threads", "2"]
    if lake_root is not None:
        command += ["--lake-root", lake_root]
    full_env = {**os.environ, "PYTHONPATH": str(SPARK_DIR), **env}
    return subprocess.run(command, cwd=SPARK_DIR.parent, env=full_env, capture_output=True, text=True, timeout=300)


def last_line(text: str) -> str:
    return text.rstrip("\n").rsplit("\n", 1)[-1]


def test_split_tables_and_load_warehouse_run_as_one_process_each(lake, pg):
    step = f"steps/source={SOURCE}/dt={DT}/run=5/"
    inputs = lake.parts(5, [[order(1), order(2, total="not a number")]])
    spec_uri = lake.write_json(step + "split_tables.json", transform_spec(lake, 5, inputs, 2))

    failed = embedded("split_tables", spec_uri)
    assert failed.returncode == 2  # the same data fails the same way
    assert last_line(failed.stderr) == (
        f"split_tables: part {inputs[0]} line 2: column orders.total is decimal(12,2), but total is \"not a number\"")
    assert not lake.file(manifest_key(5)).exists()

    lake.parts(5, [[order(1), order(2, items=[])]])  # the retry reads corrected parts
    done = embedded("split_tables", spec_uri)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = lake.read_json(manifest_key(5))
    assert json.loads(last_line(done.stdout)) == manifest
    assert manifest["tables"]["order_items"]["rows"] == 2

    load_spec = {
        "version": 1, "job": "load_warehouse", "runId": 5, "jobId": 51, "source": SOURCE, "dt": DT,
        # The runner may stage the lake elsewhere: --lake-root wins over the spec's lakeRoot.
        "lakeRoot": "file:///nonexistent/lake", "manifest": manifest_key(5), "tables": demo_tables(),
        "cursorColumn": "updated_at",
        "warehouse": {"dialect": "postgres", "jdbcUrl": pg.url, "user": "postgres", "schema": pg.schema,
                      "copyRoleArn": None},
    }
    load_uri = lake.write_json(step + "load_warehouse.json", load_spec)
    loaded = embedded("load_warehouse", load_uri, lake.root, AFLUENTE_WAREHOUSE_PASSWORD="unused-by-trust-auth")
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert "unused-by-trust-auth" not in loaded.stdout + loaded.stderr
    result = lake.read_json(step + "load_warehouse.result.json")
    assert json.loads(last_line(loaded.stdout)) == result
    assert result == {"version": 1, "stage": "load", "runId": 5, "alreadyLoaded": False,
                      "rows": {"orders": 2, "order_items": 2, "order_tags": 4},
                      "stale": {"orders": 0, "order_items": 0, "order_tags": 0},
                      "schemaChanges": ["create table orders", "create table order_items", "create table order_tags"],
                      "keptColumns": {}}
    assert pg.rows("orders", "id, total::text") == [(1, "25.50"), (2, "25.50")]


def test_a_bad_spec_or_warehouse_fails_with_one_line_naming_it(lake, tmp_path):
    missing = embedded("split_tables", "file://" + str(tmp_path / "nope.json"))
    assert missing.returncode == 1
    assert last_line(missing.stderr).startswith("split_tables: cannot read the spec file://")

    s3 = embedded("split_tables", lake.write_json("steps/x.json", transform_spec(lake, 1, [], 0)), "s3://bucket/lake")
    assert s3.returncode == 1
    assert last_line(s3.stderr).startswith("split_tables: the embedded engine reads a file:// lake, not s3://bucket/lake")

    header = embedded("split_tables", lake.write_json("steps/y.json", {"version": 1, "job": "split_tables"}))
    assert header.returncode == 2  # a bad spec fails the same way every time
    assert last_line(header.stderr) == "split_tables: the transform spec has no 'runId'"

    spec = {"version": 1, "job": "load_warehouse", "runId": 1, "jobId": 2, "source": SOURCE, "dt": DT,
            "lakeRoot": lake.root, "manifest": manifest_key(1), "tables": demo_tables(), "cursorColumn": None,
            "warehouse": {"dialect": "postgres", "jdbcUrl": "jdbc:postgresql://127.0.0.1:1/afluente", "user": "postgres",
                          "schema": "x", "copyRoleArn": None}}
    lake.write_json(manifest_key(1), {"version": 1, "stage": "transform", "runId": 1,
                                      "tables": {t: {"files": []} for t in demo_tables()}})
    unreachable = embedded("load_warehouse", lake.write_json("steps/load.json", spec))
    assert unreachable.returncode == 1  # a refused connection may answer next time
    assert last_line(unreachable.stderr).startswith(
        "load_warehouse: cannot connect to the warehouse at 127.0.0.1:1/afluente:")


def test_help_needs_no_engine_packages_to_be_imported_first():
    result = subprocess.run([sys.executable, "-m", "afluente_embedded", "--help"], cwd=SPARK_DIR,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "split_tables" in result.stdout


def test_the_warehouse_url_becomes_libpq_parameters_and_redshift_verifies_its_certificate():
    from afluente_embedded.warehouse import connection_args

    assert connection_args("jdbc:postgresql://127.0.0.1:5432/afluente", "postgres") == {
        "host": "127.0.0.1", "port": 5432, "dbname": "afluente"}
    assert connection_args("jdbc:postgresql://db.internal/warehouse?ssl=true&reWriteBatchedInserts=true",
                           "postgres") == {"host": "db.internal", "port": 5432, "dbname": "warehouse",
                                           "sslmode": "require"}
    assert connection_args("jdbc:redshift://wg.123.eu-west-1.redshift-serverless.amazonaws.com:5439/dev?ssl=false",
                           "redshift") == {"host": "wg.123.eu-west-1.redshift-serverless.amazonaws.com", "port": 5439,
                                           "dbname": "dev", "sslmode": "verify-full", "sslrootcert": "system"}


def test_a_staging_fill_that_fails_fails_the_load_and_leaves_nothing(lake, pg):
    # The tables' staging is filled side by side; a failure in one of them is the step's, and nothing is merged.

    inputs = lake.parts(1, [[order(1), order(2)]])
    manifest = run_split(transform_spec(lake, 1, inputs, 2), threads=2)
    os.remove(lake.file(manifest["tables"]["order_items"]["files"][0]["key"]))
    with pytest.raises(StepError, match=r"^reading the curated files of order_items failed: "):
        run_load(load_spec(lake, 1, pg), threads=2)
    # The targets are created in the merge's transaction, which never began.
    assert pg.conn.execute("SELECT to_regclass(%s)", (f'"{pg.schema}".orders',)).fetchone() == (None,)
    assert pg.count("_afluente_load_ledger") == 0
    assert staging_tables(pg) == []
