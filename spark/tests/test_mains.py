"""The real mains through spark-submit, exactly as the service's local runner runs them (PYTHONPATH=spark)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

from helpers import DT, JDBC_JAR, SOURCE, demo_tables, manifest_key, order, transform_spec

SPARK_DIR = Path(__file__).resolve().parents[1]
REPO = SPARK_DIR.parent
VENV_BIN = Path(sys.executable).parent
SPARK_HOME = Path(__import__("pyspark").__file__).parent


def spark_submit(script: str, spec_uri: str, lake_root: Optional[str] = None, **env: str) -> subprocess.CompletedProcess:
    command: List[str] = [
        str(VENV_BIN / "spark-submit"), "--master", "local[*]", "--jars", JDBC_JAR,
        "--conf", "spark.sql.session.timeZone=UTC", f"spark/{script}", "--spec", spec_uri,
    ]
    if lake_root is not None:
        command += ["--lake-root", lake_root]
    full_env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "PYSPARK_PYTHON": sys.executable,
                "PYTHONPATH": str(SPARK_DIR), **env}
    return subprocess.run(command, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=600)


def last_line(text: str) -> str:
    return text.rstrip("\n").rsplit("\n", 1)[-1]


def test_split_tables_and_load_warehouse_run_through_spark_submit(lake, pg):
    step = f"steps/source={SOURCE}/dt={DT}/run=5/"
    inputs = lake.parts(5, [[order(1), order(2, total="not a number")]])
    spec_uri = lake.write_json(step + "split_tables.json", transform_spec(lake, 5, inputs, 2))

    failed = spark_submit("split_tables.py", spec_uri)
    # spark-submit exits with the driver's code: 2, the same data fails the same way.
    assert failed.returncode == 2
    assert last_line(failed.stderr) == (
        f"split_tables: part {inputs[0]} line 2: column orders.total is decimal(12,2), but total is \"not a number\"")
    assert not lake.file(manifest_key(5)).exists()

    lake.parts(5, [[order(1), order(2, items=[])]])  # the retry reads corrected parts
    done = spark_submit("split_tables.py", spec_uri)
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
    loaded = spark_submit("load_warehouse.py", load_uri, lake.root, AFLUENTE_WAREHOUSE_PASSWORD="unused-by-trust-auth")
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert "unused-by-trust-auth" not in loaded.stdout + loaded.stderr
    result = lake.read_json(step + "load_warehouse.result.json")
    assert result == {"version": 1, "stage": "load", "runId": 5, "alreadyLoaded": False,
                      "rows": {"orders": 2, "order_items": 2, "order_tags": 4},
                      "stale": {"orders": 0, "order_items": 0, "order_tags": 0},
                      "schemaChanges": ["create table orders", "create table order_items", "create table order_tags"],
                      "keptColumns": {}}
    assert pg.rows("orders", "id, total::text") == [(1, "25.50"), (2, "25.50")]
    assert pg.rows("order_items", "order_id, line, sku", "1, 2") == [(1, 1, "A-1"), (1, 2, "B-2")]
