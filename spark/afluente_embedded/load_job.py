"""load_warehouse on DuckDB and psycopg: reads a LoadSpec (contract/steps.ts) and merges exactly the files of the
transform's manifest into the warehouse, in one transaction recorded in the load ledger, then writes the
LoadResult. The statements are the Spark job's (afluente_spark/sql.py); only the staging is filled another way:

- PostgreSQL: DuckDB reads the manifest's Parquet files and writes them as CSV, which COPY … FROM STDIN streams
  into the staging table (PostgreSQL's bulk path; dates, timestamps and json are staged as text, as there).
- Redshift: COPY from the curated Parquet on S3, as the Spark job does.
"""
from __future__ import annotations

import datetime
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Mapping, Optional

import duckdb

from afluente_spark.errors import StepError
from afluente_spark.merge import Merged, drop_staging, merge_staged, prepare
from afluente_spark.spec import (LoadStep, Table, check_transform_manifest, load_result_key,
                                 read_load_spec, s3_root)
from afluente_spark.sql import DIALECTS, WarehouseSql, ident

from .lake import FileLake
from .plan import literal
from .session import open_session
from .warehouse import Warehouse

JOB = "load_warehouse"
PASSWORD_ENV = "AFLUENTE_WAREHOUSE_PASSWORD"


def _read_manifest(lake: FileLake, step: LoadStep) -> Mapping[str, Any]:
    key = step.manifest_key
    try:
        manifest = lake.read_json(key)
    except OSError as error:
        raise StepError(f"cannot read the transform manifest {key}: {error}") from None
    except ValueError as error:
        raise StepError(f"the transform manifest {key} is not JSON: {error}") from None
    return check_transform_manifest(manifest, key, step.run_id, step.tables)


def run_load(spec: Mapping[str, Any], lake_root: Optional[str] = None, memory_limit: str = "512MB",
             threads: int = 0, temp_dir: Optional[str] = None) -> Dict[str, Any]:
    """Runs the step for a parsed spec; returns the LoadResult it wrote. Raises StepError on failure."""
    step = read_load_spec(spec, JOB, DIALECTS, lake_root)
    lake = FileLake(step.root)
    manifest = _read_manifest(lake, step)
    loaded_at = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    # On PostgreSQL each staging table is filled by one COPY of exactly the manifest's files: each curated row
    # once, typed. Redshift's COPY reads every object under the prefix: the merge keeps its dedupe there.
    sql = WarehouseSql(step.tables, step.dialect, step.schema, step.run_id, loaded_at, step.cursor_column,
                       staged_by_copy=step.dialect == "postgres")

    warehouse = Warehouse(step.dialect, step.url, step.user, os.environ.get(PASSWORD_ENV) or None)
    try:
        merged = prepare(warehouse, sql, manifest)
        already = merged is not None
        if merged is None:
            with open_session(temp_dir, memory_limit, threads) as connection:
                merged = _load(connection, warehouse, lake, step, sql, manifest, temp_dir)
    finally:
        warehouse.close()

    result = {"version": 1, "stage": "load", "runId": step.run_id, **merged.result_fields(),
              "alreadyLoaded": already}
    lake.write_json(load_result_key(step.source, step.dt, step.run_id), result)
    return result


def _staged_columns(sql: WarehouseSql, table: Table) -> List[str]:
    """The Parquet columns as their staging text: timestamps in UTC without an offset, as the Spark job stages
    them; everything else as DuckDB writes it in CSV (decimals exact, doubles round-trip)."""
    columns = []
    for column in sql.columns(table):
        name = ident(column.name)
        if column.type.kind == "timestamp":
            columns.append(f"CAST(CAST({name} AS TIMESTAMP) AS VARCHAR) AS {name}")
        else:
            columns.append(name)
    return columns


def _fill_postgres(connection: duckdb.DuckDBPyConnection, step: LoadStep, sql: WarehouseSql, table: Table,
                   paths: List[str], folder: str) -> None:
    """One table's staging: DuckDB writes the Parquet files as CSV, and one COPY streams it in, on a connection
    of its own (the tables are filled side by side)."""
    if not paths:
        return
    csv = os.path.join(folder, f"{table.name}.csv")
    listed = ", ".join(literal(p) for p in paths)
    text_columns = [ident(c.name) for c in sql.columns(table) if c.type.kind in ("string", "json")]
    # Every text value quoted: an empty string is "" and NULL an empty unquoted field, as COPY's CSV reads them,
    # and a value such as \. or a line break cannot end or split a row. Dates and timestamps (UTC, no offset)
    # are COPY's to parse into their typed staging columns.
    force = f", FORCE_QUOTE ({', '.join(text_columns)})" if text_columns else ""
    try:
        connection.execute(f"COPY (SELECT {', '.join(_staged_columns(sql, table))} FROM read_parquet([{listed}])) "
                           f"TO {literal(csv)} (FORMAT csv, HEADER false{force})")
    except duckdb.Error as error:
        raise StepError(f"reading the curated files of {table.name} failed: {error}") from None
    names = ", ".join(ident(c.name) for c in sql.columns(table))
    warehouse = Warehouse(step.dialect, step.url, step.user, os.environ.get(PASSWORD_ENV) or None)
    try:
        warehouse.copy_in(f"COPY {sql.staging(table)} ({names}) FROM STDIN WITH (FORMAT csv)", csv,
                          f"COPY into the staging table of {table.name}")
    finally:
        warehouse.close()
        os.remove(csv)


def _fill_postgres_tables(connection: duckdb.DuckDBPyConnection, step: LoadStep, sql: WarehouseSql,
                          lake: FileLake, manifest: Mapping[str, Any], temp_dir: Optional[str]) -> None:
    """Every table's staging at once: while one table's COPY keeps PostgreSQL busy, DuckDB writes the next one's
    CSV. Each thread has its own DuckDB cursor and warehouse connection; the first failure is raised."""
    with tempfile.TemporaryDirectory(prefix="afluente-copy-", dir=temp_dir or None) as folder:
        tables = sql.tables.all
        with ThreadPoolExecutor(max_workers=len(tables)) as pool:
            futures = [
                pool.submit(_fill_postgres, connection.cursor(), step, sql, table,
                            [lake.path(str(f["key"])) for f in manifest["tables"][table.name]["files"]], folder)
                for table in tables
            ]
            for future in futures:
                future.result()


def _load(connection: duckdb.DuckDBPyConnection, warehouse: Warehouse, lake: FileLake, step: LoadStep,
          sql: WarehouseSql, manifest: Mapping[str, Any], temp_dir: Optional[str]) -> Merged:
    tables = sql.tables
    try:
        # Staging is filled outside the transaction, as the Spark job does.
        for table in tables.all:
            for label, statement in sql.staging_statements(table):
                warehouse.execute(statement, label)
        if sql.dialect == "postgres":
            _fill_postgres_tables(connection, step, sql, lake, manifest, temp_dir)
        else:
            assert step.copy_role_arn is not None
            for table in tables.all:
                prefix = s3_root(step.root, step.spec_root).rstrip("/") + "/" + str(manifest["tables"][table.name]["prefix"])
                warehouse.execute(sql.copy(table, prefix, step.copy_role_arn),
                                  f"COPY into the staging table of {table.name}")

        return merge_staged(warehouse, sql)
    finally:
        drop_staging(warehouse, sql)
