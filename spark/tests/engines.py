"""The two engines behind one interface, and the conformance check that holds them to one truth.

Every case of test_split.py and test_load.py runs once per engine (the `engine` fixture). On the embedded
engine each step also runs on Spark, over a twin of the inputs (the lake next to it, `<lake>-spark`, and the
PostgreSQL schema `<schema>_spark`), and the two outputs must be identical: the manifest (all but file names and
sizes), every curated table row for row and cell for cell with its Parquet types, the load result, and every
warehouse table (all but the load time). A step that fails must fail on both engines, a split with the same
message. Any difference fails the test.
"""
from __future__ import annotations

import datetime
import os
import shutil
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import psycopg
import pyarrow.parquet as pq
from helpers import PG_DSN

from afluente_spark.errors import StepError

TWIN_LAKE_SUFFIX = "-spark"
TWIN_SCHEMA_SUFFIX = "_spark"
#: Small enough that a test's spill paths are exercised, big enough for every case.
EMBEDDED_OPTIONS = {"memory_limit": "256MB", "threads": 2}


def twin_root(root: str) -> str:
    return root.rstrip("/") + TWIN_LAKE_SUFFIX


def twin_schema(schema: str) -> str:
    return schema + TWIN_SCHEMA_SUFFIX


class SparkEngine:
    name = "spark"

    def __init__(self, spark: Any) -> None:
        self.spark = spark

    def run_split(self, spec: Mapping[str, Any]) -> Dict[str, Any]:
        from afluente_spark.split_job import run_split

        return run_split(self.spark, spec)

    def run_load(self, spec: Mapping[str, Any]) -> Dict[str, Any]:
        from afluente_spark.load_job import run_load

        return run_load(self.spark, spec)


class EmbeddedEngine:
    """The embedded engine, checked against Spark at every step."""

    name = "embedded"

    def __init__(self, spark: Any) -> None:
        self.reference = SparkEngine(spark)

    def run_split(self, spec: Mapping[str, Any]) -> Dict[str, Any]:
        from afluente_embedded.split_job import run_split

        root = _folder(spec["lakeRoot"])
        _sync_inputs(root, root + TWIN_LAKE_SUFFIX)
        twin = {**spec, "lakeRoot": twin_root(spec["lakeRoot"])}
        ours, our_error = _attempt(lambda: run_split(spec, **EMBEDDED_OPTIONS))
        theirs, their_error = _attempt(lambda: self.reference.run_split(twin))
        _same_failure(our_error, their_error, compare_messages=True)
        assert ours is not None and theirs is not None
        compare_manifests(ours, theirs)
        for name in ours["tables"]:
            compare_tables(name, _files(root, ours, name), _files(root + TWIN_LAKE_SUFFIX, theirs, name))
        return ours

    def run_load(self, spec: Mapping[str, Any]) -> Dict[str, Any]:
        from afluente_embedded.load_job import run_load

        schema = spec["warehouse"]["schema"]
        twin = {**spec, "lakeRoot": twin_root(spec["lakeRoot"]),
                "warehouse": {**spec["warehouse"], "schema": twin_schema(schema)}}
        ours, our_error = _attempt(lambda: run_load(spec, **EMBEDDED_OPTIONS))
        theirs, their_error = _attempt(lambda: self.reference.run_load(twin))
        if their_error is not None:
            # The twin's error names its own schema.
            their_error.args = (str(their_error).replace(twin_schema(schema), schema),)
        _same_failure(our_error, their_error, compare_messages=False)
        assert ours is not None and theirs is not None
        assert ours == theirs, f"load results differ: embedded {ours}, spark {theirs}"
        compare_warehouses(schema, twin_schema(schema))
        return ours


def _folder(root: str) -> str:
    assert root.startswith("file://"), root
    return root[len("file://"):]


def _sync_inputs(root: str, twin: str) -> None:
    """The twin lake gets the same validated parts (a test may rewrite them between steps)."""
    source = os.path.join(root, "validated")
    target = os.path.join(twin, "validated")
    shutil.rmtree(target, ignore_errors=True)
    if os.path.isdir(source):
        shutil.copytree(source, target)
    os.makedirs(twin, exist_ok=True)


def _attempt(step: Callable[[], Dict[str, Any]]) -> Tuple[Optional[Dict[str, Any]], Optional[StepError]]:
    try:
        return step(), None
    except StepError as error:
        return None, error


def _same_failure(ours: Optional[StepError], theirs: Optional[StepError], compare_messages: bool) -> None:
    if ours is None and theirs is None:
        return
    assert ours is not None, f"spark failed but the embedded engine did not: {theirs}"
    assert theirs is not None, f"the embedded engine failed but spark did not: {ours}"
    # Whether a retry can help is the service's to act on: both engines must say the same.
    assert ours.permanent == theirs.permanent, f"permanent: embedded {ours.permanent}, spark {theirs.permanent}"
    if compare_messages:
        assert str(ours) == str(theirs), f"the engines fail differently:\n embedded: {ours}\n spark:    {theirs}"
    else:
        # The warehouse's own words come through another driver; the statement that failed must be the same.
        assert str(ours).split(" failed: ")[0] == str(theirs).split(" failed: ")[0], (ours, theirs)
    raise ours


def compare_manifests(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> None:
    """Equal but for the files' names, sizes and split: each engine names and packs its files its own way."""
    def shape(manifest: Mapping[str, Any]) -> Dict[str, Any]:
        tables = {name: {"prefix": t["prefix"], "rows": t["rows"], "fileRows": sum(f["rows"] for f in t["files"])}
                  for name, t in manifest["tables"].items()}
        return {**{k: v for k, v in manifest.items() if k != "tables"}, "tables": tables,
                "order": list(manifest["tables"])}

    assert shape(ours) == shape(theirs)
    for name, table in ours["tables"].items():
        for f in table["files"]:
            assert f["key"].startswith(table["prefix"]) and f["key"].endswith(".parquet"), f


def _files(root: str, manifest: Mapping[str, Any], table: str) -> List[str]:
    return [os.path.join(root, f["key"]) for f in manifest["tables"][table]["files"]]


@dataclass(frozen=True)
class _Column:
    name: str
    physical: str
    logical: str


def _columns(path: str) -> List[_Column]:
    schema = pq.ParquetFile(path).schema
    return [_Column(c.name, c.physical_type, _logical(c)) for c in schema]


def _logical(column: Any) -> str:
    logical = column.logical_type
    text = str(logical) if logical is not None and logical.type != "NONE" else ""
    # Spark marks a smallint INT_16 and an int INT_32 in the old converted type; DuckDB writes the same as an
    # Int logical type. Either spelling says the same width and sign.
    return text or str(column.converted_type)


def _normalize_logical(physical: str, text: str) -> str:
    """One spelling per type: Spark's old converted types as logical types, and a plain INT32 or INT64 (signed
    by definition) the same as one annotated with its own width."""
    text = {"INT_16": "Int(bitWidth=16, isSigned=true)", "INT_32": "Int(bitWidth=32, isSigned=true)",
            "INT_64": "Int(bitWidth=64, isSigned=true)", "NONE": ""}.get(text, text)
    if (physical, text) in (("INT32", "Int(bitWidth=32, isSigned=true)"), ("INT64", "Int(bitWidth=64, isSigned=true)")):
        return ""
    return text


def compare_tables(name: str, ours: List[str], theirs: List[str]) -> None:
    """Same columns, same Parquet types, same rows (as multisets), cell for cell."""
    our_types = {tuple((c.name, c.physical, _normalize_logical(c.physical, c.logical)) for c in _columns(p)) for p in ours}
    their_types = {tuple((c.name, c.physical, _normalize_logical(c.physical, c.logical)) for c in _columns(p)) for p in theirs}
    assert our_types == their_types, f"table {name}: Parquet columns differ:\n embedded {our_types}\n spark    {their_types}"
    assert sorted(_rows(ours), key=repr) == sorted(_rows(theirs), key=repr), f"table {name}: rows differ"


def _rows(paths: List[str]) -> List[Tuple[Any, ...]]:
    rows: List[Tuple[Any, ...]] = []
    for path in paths:
        table = pq.read_table(path)
        columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
        rows.extend(tuple(_cell(v) for v in row) for row in zip(*columns))
    return rows


def _cell(value: Any) -> Any:
    # A cell keeps its exact value and its Python type (int, Decimal, str, bool, float, date, datetime).
    if isinstance(value, datetime.datetime):
        return ("datetime", value.astimezone(datetime.timezone.utc).isoformat() if value.tzinfo else value.isoformat(),
                value.tzinfo is not None)
    if isinstance(value, float):
        return ("float", value.hex())
    if isinstance(value, Decimal):
        return ("decimal", str(value))
    return (type(value).__name__, value)


def compare_warehouses(schema: str, twin: str) -> None:
    """Every table of both schemas holds the same rows, all columns but the load time."""
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        def tables(s: str) -> List[str]:
            return sorted(r[0] for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (s,)).fetchall())

        assert tables(schema) == tables(twin)
        for table in tables(schema):
            columns = [r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
                "AND column_name NOT IN ('_afluente_loaded_at', 'loaded_at') ORDER BY ordinal_position",
                (schema, table)).fetchall()]
            types = conn.execute(
                "SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position", (schema, table)).fetchall()
            twin_types = conn.execute(
                "SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position", (twin, table)).fetchall()
            assert types == twin_types, f"{table}: column types differ"
            listed = ", ".join(f'"{c}"' for c in columns)

            def rows(s: str) -> List[Tuple[Any, ...]]:
                return conn.execute(f'SELECT {listed} FROM "{s}"."{table}" ORDER BY {listed}').fetchall()

            assert rows(schema) == rows(twin), f"warehouse table {table} differs between the engines"
