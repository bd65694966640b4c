"""split_tables on DuckDB: reads a TransformSpec (contract/steps.ts), splits the run's validated records into the
curated tables' Parquet, and writes the TransformManifest last, as the transform's commit marker. Same keys,
same manifest and same rows as the Spark job (afluente_spark/split_job.py)."""
from __future__ import annotations

import math
import os
from typing import Any, Dict, List, Mapping, Optional

import duckdb

from afluente_spark.diagnose import explain
from afluente_spark.errors import DataError, StepError
from afluente_spark.spec import Table, curated_manifest_key, curated_prefix, read_transform_spec, transform_manifest

from .lake import FileLake
from .lines import LINE, LINES, PART, POS, line_number, load_lines
from .plan import RECORDS, WINNERS, SplitPlan, literal
from .session import open_session

JOB = "split_tables"
#: Rows per Parquet file, as the Spark job: a table of n rows is written as ceil(n / ROWS_PER_FILE) files.
ROWS_PER_FILE = 1_000_000


def _line_of(connection: duckdb.DuckDBPyConnection, pos: int) -> str:
    row = connection.execute(f"SELECT {LINE} FROM {LINES} WHERE rowid = ?", [pos]).fetchone()
    return row[0] if row else ""


def _first(connection: duckdb.DuckDBPyConnection, table: str, condition: str) -> Optional[tuple]:
    """(part, position, line number) of the first row, in input order, that meets the condition."""
    position = POS if table != LINES else "rowid"
    found = connection.execute(
        f"SELECT {PART}, {position} FROM {table} WHERE {condition} ORDER BY {position} LIMIT 1").fetchone()
    if found is None:
        return None
    return found[0], found[1], line_number(connection, found[0], found[1])


def _read_records(connection: duckdb.DuckDBPyConnection, plan: SplitPlan, inputs: List[str]) -> None:
    try:
        connection.execute(plan.records())
    except duckdb.Error as error:
        # Only a line that is no JSON document at all stops DuckDB's reader; find the first one.
        found = _first(connection, LINES, f"NOT json_valid({LINE})")
        if found is None:
            raise StepError(f"reading the validated records failed: {error}") from None
        reason = explain(_line_of(connection, found[1]), plan.tables) or str(error)
        raise DataError(f"part {inputs[found[0]]} line {found[2]}: {reason}") from None
    bad = _first(connection, RECORDS, "afl_bad")
    if bad is not None:
        reason = explain(_line_of(connection, bad[1]), plan.tables)
        raise DataError(f"part {inputs[bad[0]]} line {bad[2]}: "
                        f"{reason or 'a value does not fit its column type'}")


def _write_table(connection: duckdb.DuckDBPyConnection, lake: FileLake, query: str, prefix: str,
                 at_most: int) -> List[Dict[str, Any]]:
    """Writes a table's rows under its run folder (emptied first: a retry replaces its own run's files and no
    other's) as ceil(rows / ROWS_PER_FILE) snappy Parquet files, at least one. `at_most` bounds the rows: when
    it fits one file the rows stream straight to it, else they are counted first."""
    folder = lake.empty_folder(prefix)
    options = "(FORMAT parquet, COMPRESSION snappy)"
    if at_most <= ROWS_PER_FILE:
        connection.execute(f"COPY ({query}) TO {literal(os.path.join(folder, 'part-00000.snappy.parquet'))} {options}")
    else:
        connection.execute(f"CREATE OR REPLACE TABLE afl_out AS {query}")
        rows = connection.execute("SELECT count(*) FROM afl_out").fetchone()[0]
        files = max(1, math.ceil(rows / ROWS_PER_FILE))
        for i in range(files):
            start, end = rows * i // files, rows * (i + 1) // files
            target = literal(os.path.join(folder, f"part-{i:05d}.snappy.parquet"))
            connection.execute(f"COPY (SELECT * FROM afl_out WHERE rowid >= {start} AND rowid < {end}) TO {target} "
                               f"{options}")
        connection.execute("DROP TABLE afl_out")
    written = []
    for name in lake.list_names(prefix):
        path = os.path.join(folder, name)
        rows = connection.execute("SELECT sum(num_rows) FROM parquet_file_metadata(?)", [path]).fetchone()[0]
        written.append({"key": prefix + name, "rows": int(rows or 0), "bytes": os.path.getsize(path)})
    return written


def run_split(spec: Mapping[str, Any], lake_root: Optional[str] = None, memory_limit: str = "512MB",
              threads: int = 0, temp_dir: Optional[str] = None) -> Dict[str, Any]:
    """Runs the step for a parsed spec; returns the manifest it wrote. Raises StepError on failure."""
    step = read_transform_spec(spec, JOB, lake_root)
    tables = step.tables
    plan = SplitPlan(tables, step.cursor_field)
    lake = FileLake(step.root)
    manifest_key = curated_manifest_key(step.source, step.dt, step.run_id)
    # A retry un-commits first: nobody trusts the old manifest while the tables are rewritten.
    lake.delete(manifest_key)
    inputs = list(step.inputs)
    for key in inputs:
        if not lake.exists(key):
            raise StepError(f"part {key} does not exist under {step.root}")

    with open_session(temp_dir, memory_limit, threads) as connection:
        read = load_lines(connection, [lake.path(k) for k in inputs], inputs)
        _read_records(connection, plan, inputs)
        if read != step.records:
            parts = f"{len(inputs)} part" + ("" if len(inputs) == 1 else "s")
            raise StepError(f"read {read} records from {parts}, but the spec says {step.records}")
        null_key = _first(connection, RECORDS, plan.null_key())
        if null_key is not None:
            keys = ", ".join(tables.parent.key)
            raise DataError(f"part {inputs[null_key[0]]} line {null_key[2]}: a record has no value for the key "
                            f"of table {tables.parent.name} ({keys})")
        connection.execute(f"DROP TABLE {LINES}")
        if connection.execute(plan.repeated_keys()).fetchone()[0]:
            connection.execute(plan.winners())
            connection.execute(f"DROP TABLE {RECORDS}")
        else:
            # No key twice (the usual run): every record wins, and ranking them would only copy them.
            connection.execute(f"ALTER TABLE {RECORDS} RENAME TO {WINNERS}")
        winners = connection.execute(f"SELECT count(*) FROM {WINNERS}").fetchone()[0]
        estimates: Dict[str, int] = {tables.parent.name: winners}
        for child in plan.children:
            total = connection.execute(f"SELECT {plan.elements(child)} FROM {WINNERS}").fetchone()[0]
            estimates[child.table.name] = int(total)
        written: Dict[str, Any] = {}
        for table in tables.all:
            written[table.name] = _written(connection, lake, plan, table, step.dt, step.run_id,
                                           estimates[table.name])

    manifest = transform_manifest(step, read, read - winners, estimates, written)
    lake.write_json(manifest_key, manifest)
    return manifest


def _written(connection: duckdb.DuckDBPyConnection, lake: FileLake, plan: SplitPlan, table: Table, dt: str,
             run_id: int, at_most: int) -> Dict[str, Any]:
    prefix = curated_prefix(table.name, dt, run_id)
    files = _write_table(connection, lake, plan.table_rows(table), prefix, at_most)
    return {"prefix": prefix, "rows": sum(f["rows"] for f in files), "files": files}
