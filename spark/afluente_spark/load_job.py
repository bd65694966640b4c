"""load_warehouse: reads a LoadSpec (contract/steps.ts) and merges exactly the files of the transform's
manifest into the warehouse, in one transaction, recorded in the load ledger; then writes the LoadResult."""
from __future__ import annotations

import datetime
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Mapping, Optional

from py4j.protocol import Py4JJavaError
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from .errors import StepError, java_message
from .jdbc import Warehouse, WarehouseError, connection_properties, writer_url
from .lake import Lake, join
from .merge import Merged, drop_staging, merge_staged, prepare
from .spec import (Table, Tables, check_transform_manifest, load_result_key, read_load_spec,
                   s3_root)
from .split_job import configure
from .sql import DIALECTS, WarehouseSql, ident

JOB = "load_warehouse"
PASSWORD_ENV = "AFLUENTE_WAREHOUSE_PASSWORD"
JDBC_BATCH_SIZE = 10000


def _read_manifest(lake: Lake, root: str, key: str, run_id: int, tables: Tables) -> Mapping[str, Any]:
    uri = join(root, key)
    try:
        manifest = lake.read_json(uri)
    except Py4JJavaError as error:
        raise StepError(f"cannot read the transform manifest {key}: {java_message(error)}") from None
    except ValueError as error:
        raise StepError(f"the transform manifest {key} is not JSON: {error}") from None
    return check_transform_manifest(manifest, key, run_id, tables)


def _staged_frame(spark: SparkSession, sql: WarehouseSql, table: Table, uris: List[str]) -> DataFrame:
    columns = []
    for column in sql.columns(table):
        value = F.col(column.name)
        if column.type.kind in ("date", "timestamp"):
            # Staged as text (see sql.staging_type); the session time zone is UTC.
            value = value.cast("string")
        columns.append(value.alias(column.name))
    return spark.read.parquet(*uris).select(*columns)


def _can_copy(spark: SparkSession, sql: WarehouseSql, table: Table) -> bool:
    """COPY from local CSV files needs the driver to see the executors' files (local mode). A one-column table
    is left to the JDBC writer: in CSV, a line holding only `\\.` would end the COPY."""
    return spark.sparkContext.master.startswith("local") and len(sql.columns(table)) > 1


def _copy_postgres(spark: SparkSession, sql: WarehouseSql, table: Table, frame: DataFrame, url: str,
                   user: Optional[str], password: Optional[str]) -> None:
    """Fills a staging table with COPY, PostgreSQL's bulk path: Spark writes the rows as CSV files in
    parallel, and each file is streamed through the driver's CopyManager on its own connection. Several times
    faster than the JDBC writer's batched INSERTs."""
    folder = tempfile.mkdtemp(prefix="afluente-copy-")
    try:
        out = os.path.join(folder, "csv")
        # CSV as PostgreSQL reads it: quotes doubled, NULL an empty unquoted field, "" an empty string, and no
        # trimming (Spark's writer trims white space by default).
        (frame.write.option("quote", '"').option("escape", '"').option("ignoreLeadingWhiteSpace", "false")
         .option("ignoreTrailingWhiteSpace", "false").option("header", "false").csv("file://" + out))
        parts = sorted(os.path.join(out, f) for f in os.listdir(out) if f.startswith("part-"))
        names = ", ".join(ident(c.name) for c in sql.columns(table))
        statement = f"COPY {sql.staging(table)} ({names}) FROM STDIN WITH (FORMAT csv)"

        def copy(path: str) -> int:
            connection = Warehouse(spark, "postgres", url, user, password)
            try:
                return connection.copy_in(statement, path, f"COPY into the staging table of {table.name}")
            finally:
                connection.close()

        workers = max(1, min(len(parts), spark.sparkContext.defaultParallelism))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(copy, parts))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _fill_postgres(spark: SparkSession, sql: WarehouseSql, table: Table, uris: List[str], url: str,
                   user: Optional[str], password: Optional[str]) -> None:
    if not uris:
        return
    frame = _staged_frame(spark, sql, table, uris)
    if _can_copy(spark, sql, table):
        _copy_postgres(spark, sql, table, frame, url, user, password)
        return
    options = dict(connection_properties("postgres", user, password))
    options["batchsize"] = str(JDBC_BATCH_SIZE)
    options["numPartitions"] = str(max(1, spark.sparkContext.defaultParallelism))
    frame.write.jdbc(url=writer_url("postgres", url), table=sql.staging(table), mode="append", properties=options)


def _check_folder(lake: Lake, root: str, prefix: str, files: List[Mapping[str, Any]]) -> None:
    """COPY reads every object under the prefix (a stray _SUCCESS would break it): the folder must hold exactly
    the manifest's files. Dot files are Hadoop's local checksums, never on S3."""
    listed = sorted(f.name for f in lake.list_files(join(root, prefix)) if not f.name.startswith("."))
    expected = sorted(str(f["key"])[len(prefix):] for f in files)
    if listed != expected:
        raise StepError(f"{prefix} holds {listed}, but the transform manifest lists {expected}")


def run_load(spark: SparkSession, spec: Mapping[str, Any], lake_root: Optional[str] = None) -> Dict[str, Any]:
    """Runs the step for a parsed spec; returns the LoadResult it wrote. Raises StepError on failure."""
    step = read_load_spec(spec, JOB, DIALECTS, lake_root)
    run_id, source, dt, root, spec_root = step.run_id, step.source, step.dt, step.root, step.spec_root
    dialect, url, user, role_arn = step.dialect, step.url, step.user, step.copy_role_arn
    password = os.environ.get(PASSWORD_ENV) or None

    configure(spark)
    lake = Lake(spark)
    manifest = _read_manifest(lake, root, step.manifest_key, run_id, step.tables)
    loaded_at = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    sql = WarehouseSql(step.tables, dialect, step.schema, run_id, loaded_at, step.cursor_column)

    connection = Warehouse(spark, dialect, url, user, password)
    try:
        connection.set_autocommit(True)
        merged = prepare(connection, sql, manifest)
        already = merged is not None
        if merged is None:
            merged = _load(spark, lake, connection, sql, manifest, root, spec_root, url, user, password, role_arn)
    finally:
        connection.close()

    result = {"version": 1, "stage": "load", "runId": run_id, **merged.result_fields(), "alreadyLoaded": already}
    lake.write_json(join(root, load_result_key(source, dt, run_id)), result)
    return result


def _load(spark: SparkSession, lake: Lake, connection: Warehouse, sql: WarehouseSql, manifest: Mapping[str, Any],
          root: str, spec_root: str, url: str, user: Optional[str], password: Optional[str],
          role_arn: Optional[str]) -> Merged:
    tables = sql.tables
    try:
        # Staging is filled outside the transaction (Spark's JDBC writer commits per partition).
        for table in tables.all:
            for label, statement in sql.staging_statements(table):
                connection.execute(statement, label)
            entry = manifest["tables"][table.name]
            files = entry["files"]
            if sql.dialect == "postgres":
                uris = [join(root, str(f["key"])) for f in files]
                try:
                    _fill_postgres(spark, sql, table, uris, url, user, password)
                except Py4JJavaError as error:
                    raise WarehouseError.of(f"filling the staging table of {table.name} failed", error) from None
            else:
                assert role_arn is not None
                prefix = str(entry["prefix"])
                _check_folder(lake, root, prefix, files)
                connection.execute(sql.copy(table, join(s3_root(root, spec_root), prefix), role_arn),
                                   f"COPY into the staging table of {table.name}")

        return merge_staged(connection, sql)
    finally:
        drop_staging(connection, sql)
