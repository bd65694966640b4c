"""split_tables: reads a TransformSpec (contract/steps.ts), splits the run's validated records into the
curated tables' Parquet, and writes the TransformManifest last, as the transform's commit marker."""
from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional

from py4j.protocol import Py4JJavaError
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from . import split
from .diagnose import explain
from .errors import DataError, StepError, java_message
from .lake import Lake, join
from .spec import curated_manifest_key, curated_prefix, read_transform_spec, transform_manifest
from .split import FILE, LINE, POS, SplitPlan

JOB = "split_tables"
#: Rows per Parquet file: a table of n rows is written as ceil(n / ROWS_PER_FILE) files, at least one.
ROWS_PER_FILE = 1_000_000
#: Compressed input bytes per shuffle partition (gzip NDJSON inflates about tenfold).
INPUT_BYTES_PER_PARTITION = 16 * 1024 * 1024


def shuffle_partitions(spark: SparkSession, input_bytes: int) -> int:
    """Shuffle partitions sized from the run's input, at least the cluster's parallelism: the default 200 would
    make every table of a small run cost 200 tasks (adaptive execution does not coalesce a cached plan's)."""
    return max(spark.sparkContext.defaultParallelism, math.ceil(input_bytes / INPUT_BYTES_PER_PARTITION), 1)


def configure(spark: SparkSession) -> None:
    """Session settings both jobs rely on, set here too so a caller's session cannot differ."""
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    # Invalid dates and timestamps are errors, not a "legacy parser" hint.
    spark.conf.set("spark.sql.legacy.timeParserPolicy", "CORRECTED")
    # INT64 micros rather than Spark's legacy INT96: what Redshift COPY and other readers expect.
    spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    spark.conf.set("spark.sql.parquet.compression.codec", "snappy")
    spark.sparkContext._jsc.hadoopConfiguration().set("mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")


def read_lines(spark: SparkSession, lake: Lake, uris: List[str]) -> DataFrame:
    """One row per line of the parts: value, _afl_file (the part's index in `uris`), _afl_pos (increasing
    with the line within a part: a gzip part is one split, read in order)."""
    if not uris:
        return spark.createDataFrame([], f"{LINE} string, {FILE} int, {POS} long")
    index: Dict[str, int] = {}
    for i, uri in enumerate(uris):
        for spelling in lake.spellings(uri):
            index[spelling] = i
    mapping = F.create_map(*[item for name, i in index.items() for item in (F.lit(name), F.lit(i))])
    return spark.read.text(uris).select(
        F.col("value").alias(LINE),
        F.element_at(mapping, F.input_file_name()).alias(FILE),
        F.monotonically_increasing_id().alias(POS),
    )


def _line_number(lines: DataFrame, file_index: int, pos: int) -> int:
    return lines.filter((F.col(FILE) == file_index) & (F.col(POS) <= pos)).count()


def _locate(lines: DataFrame, rows: DataFrame, inputs: List[str]) -> Optional[Any]:
    """(part key, line number, row) of the first of `rows` in input order, or None."""
    first = rows.orderBy(F.col(FILE), F.col(POS)).limit(1).collect()
    if not first:
        return None
    row = first[0]
    return inputs[row[FILE]], _line_number(lines, row[FILE], row[POS]), row


def _parse_failure(lines: DataFrame, plan: SplitPlan, inputs: List[str], error: Py4JJavaError) -> StepError:
    detail = java_message(error)
    try:
        found = _locate(lines, split.corrupt_lines(lines, plan), inputs)
    except Exception:  # noqa: BLE001 - the diagnosis is best effort; the original error is reported anyway
        found = None
    if found is None:
        return StepError(f"reading the validated records failed: {detail}")
    key, line, row = found
    reason = explain(row[LINE], plan.tables) or detail
    return DataError(f"part {key} line {line}: {reason}")


#: Below this many rows a table is one file; above it, at least one file per core, so every core encodes.
ROWS_FOR_PARALLEL_WRITE = 200_000


def _write_table(df: DataFrame, uri: str, rows: int, parallelism: int) -> None:
    files = max(1, math.ceil(rows / ROWS_PER_FILE))
    if rows >= ROWS_FOR_PARALLEL_WRITE:
        files = max(files, parallelism)
    # Fewer partitions: coalesce, no shuffle. A coalesce(1) of a big table would run its whole upstream plan,
    # Parquet encoding included, in one task, hence one file per core above.
    df = df.coalesce(files) if df.rdd.getNumPartitions() >= files else df.repartition(files)
    df.write.mode("overwrite").option("compression", "snappy").parquet(uri)


def _curated_files(lake: Lake, root: str, prefix: str) -> List[Dict[str, Any]]:
    """The Parquet files under a table's run folder, with their row counts (from the footers) and sizes."""
    files = [f for f in lake.list_files(join(root, prefix)) if f.name.startswith("part-") and f.name.endswith(".parquet")]
    return [{"key": prefix + f.name, "rows": lake.parquet_rows(f.uri), "bytes": f.length} for f in files]


def run_split(spark: SparkSession, spec: Mapping[str, Any], lake_root: Optional[str] = None) -> Dict[str, Any]:
    """Runs the step for a parsed spec; returns the manifest it wrote. Raises StepError on failure."""
    step = read_transform_spec(spec, JOB, lake_root)
    run_id, source, dt, root, expected, tables = step.run_id, step.source, step.dt, step.root, step.records, step.tables
    inputs = list(step.inputs)
    plan = SplitPlan.build(tables, step.cursor_field)

    configure(spark)
    lake = Lake(spark)
    manifest_uri = join(root, curated_manifest_key(source, dt, run_id))
    # A retry un-commits first: nobody trusts the old manifest while the tables are rewritten.
    lake.delete(manifest_uri)
    uris = [join(root, key) for key in inputs]
    input_bytes = 0
    for key, uri in zip(inputs, uris):
        size = lake.size(uri)
        if size is None:
            raise StepError(f"part {key} does not exist under {root}")
        input_bytes += size
    spark.conf.set("spark.sql.shuffle.partitions", str(shuffle_partitions(spark, input_bytes)))

    lines = read_lines(spark, lake, uris)
    ranked = split.rank_records(split.parse_records(lines, plan), plan).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        try:
            stats = ranked.agg(*split.stats_columns(plan)).collect()[0]
        except Py4JJavaError as error:
            raise _parse_failure(lines, plan, inputs, error) from None
        read = int(stats["read"] or 0)
        duplicates = int(stats["duplicates"] or 0)
        if stats["unmapped"]:
            raise StepError(f"{stats['unmapped']} lines could not be traced back to their part (input_file_name)")
        if read != expected:
            parts = f"{len(inputs)} part" + ("" if len(inputs) == 1 else "s")
            raise StepError(f"read {read} records from {parts}, but the spec says {expected}")
        if stats["null_keys"]:
            found = _locate(lines, split.parse_records(lines, plan).filter(split.null_key_condition(plan)), inputs)
            where = f"part {found[0]} line {found[1]}: " if found else ""
            keys = ", ".join(tables.parent.key)
            raise DataError(f"{where}a record has no value for the key of table {tables.parent.name} ({keys})")

        winning = split.winners(ranked)
        parent = tables.parent
        estimates = {parent.name: read - duplicates}
        frames = {parent.name: split.parent_rows(winning, plan)}
        for i, child in enumerate(tables.children):
            estimates[child.name] = int(stats[f"elements_{i}"] or 0)
            frames[child.name] = split.child_rows(winning, plan, child)
        written: Dict[str, Any] = {}
        for table in tables.all:
            prefix = curated_prefix(table.name, dt, run_id)
            _write_table(frames[table.name], join(root, prefix), estimates[table.name],
                         spark.sparkContext.defaultParallelism)
            files = _curated_files(lake, root, prefix)
            written[table.name] = {"prefix": prefix, "rows": sum(f["rows"] for f in files), "files": files}
    finally:
        ranked.unpersist()

    manifest = transform_manifest(step, read, duplicates, estimates, written)
    lake.write_json(manifest_uri, manifest)
    return manifest
