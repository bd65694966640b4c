"""Test helpers: the demo source's tables, validated parts in a tmp lake, specs, and reading results back."""
from __future__ import annotations

import copy
import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

JDBC_JAR = "/usr/share/java/postgresql.jar"
PG_URL = "jdbc:postgresql://127.0.0.1:5432/afluente"
PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=afluente"
SOURCE = "demo"
DT = "2026-11-23"

# config/sources.yaml's demo source, normalized as the service hands it to the steps.
DEMO_TABLES: Dict[str, Any] = {
    "orders": {
        "key": ["id"],
        "columns": {
            "id": {"path": "id", "type": "bigint"},
            "status": {"path": "status", "type": "string"},
            "total": {"path": "total", "type": "decimal(12,2)"},
            "currency": {"path": "currency", "type": "string"},
            "created_at": {"path": "created_at", "type": "timestamp"},
            "updated_at": {"path": "updated_at", "type": "timestamp"},
            "customer_id": {"path": "customer.id", "type": "bigint"},
            "customer_name": {"path": "customer.name", "type": "string"},
            "customer_city": {"path": "customer.address.city", "type": "string"},
            "customer_country": {"path": "customer.address.country", "type": "string"},
        },
        "unknownFields": "keep",
    },
    "order_items": {
        "from": "items",
        "parentKey": {"order_id": "id"},
        "key": ["order_id", "line"],
        "columns": {
            "line": {"path": "line", "type": "int"},
            "sku": {"path": "sku", "type": "string"},
            "quantity": {"path": "quantity", "type": "int"},
            "unit_price": {"path": "unit_price", "type": "decimal(12,2)"},
        },
        "unknownFields": "keep",
    },
    "order_tags": {
        "from": "tags",
        "parentKey": {"order_id": "id"},
        "index": "position",
        "key": ["order_id", "position"],
        "columns": {"value": {"path": ".", "type": "string"}},
        "unknownFields": "keep",
    },
}


def demo_tables(**unknown_fields: str) -> Dict[str, Any]:
    tables = copy.deepcopy(DEMO_TABLES)
    for name, mode in unknown_fields.items():
        tables[name]["unknownFields"] = mode
    return tables


def demo_tables_with(**edits: Any) -> Dict[str, Any]:
    """The demo tables with `edits`, each `<table>__<column>`: a type string sets the column's type, a dict
    replaces or adds the column, None removes it."""
    tables = demo_tables()
    for where, value in edits.items():
        table, column = where.split("__")
        if value is None:
            del tables[table]["columns"][column]
        elif isinstance(value, dict):
            tables[table]["columns"][column] = value
        else:
            tables[table]["columns"][column]["type"] = value
    return tables


def order(order_id: int, updated_at: str = "2026-11-23T10:00:00.000Z", items: Any = "default",
          tags: Any = "default", **fields: Any) -> Dict[str, Any]:
    record: Dict[str, Any] = {
        "id": order_id,
        "status": "paid",
        "total": 25.5,
        "currency": "EUR",
        "created_at": "2026-11-20T08:30:00.000Z",
        "updated_at": updated_at,
        "customer": {"id": 7, "name": "Ana", "email": "ana@example.com", "address": {"city": "Porto", "country": "PT"}},
        "items": [
            {"line": 1, "sku": "A-1", "quantity": 2, "unit_price": 10.25},
            {"line": 2, "sku": "B-2", "quantity": 1, "unit_price": 5},
        ],
        "tags": ["new", "gift"],
    }
    if items != "default":
        if items is None:
            record["items"] = None
        elif items == "missing":
            del record["items"]
        else:
            record["items"] = items
    if tags != "default":
        if tags == "missing":
            del record["tags"]
        else:
            record["tags"] = tags
    record.update(fields)
    return record


Record = Union[Dict[str, Any], str]


@dataclass
class Lake:
    path: Path

    @property
    def root(self) -> str:
        return "file://" + str(self.path)

    def file(self, key: str) -> Path:
        return self.path / key

    def write_part(self, key: str, records: Iterable[Record]) -> str:
        """A validated part: gzip NDJSON, one record per line (a str is written as is)."""
        target = self.file(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(target, "wt", encoding="utf-8") as out:
            for record in records:
                out.write((record if isinstance(record, str) else json.dumps(record, ensure_ascii=False)) + "\n")
        return key

    def write_json(self, key: str, doc: Any) -> str:
        target = self.file(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(doc, indent=2), encoding="utf-8")
        return self.root + "/" + key

    def read_json(self, key: str) -> Any:
        return json.loads(self.file(key).read_text(encoding="utf-8"))

    def parts(self, run_id: int, parts: Sequence[Sequence[Record]]) -> List[str]:
        prefix = f"validated/source={SOURCE}/dt={DT}/run={run_id}/"
        return [self.write_part(f"{prefix}part-00000-{i:05d}.ndjson.gz", records) for i, records in enumerate(parts)]


def transform_spec(lake: Lake, run_id: int, inputs: List[str], records: int, tables: Optional[Dict[str, Any]] = None,
                   cursor: Optional[str] = "updated_at") -> Dict[str, Any]:
    return {
        "version": 1,
        "job": "split_tables",
        "runId": run_id,
        "jobId": run_id * 10,
        "source": SOURCE,
        "dt": DT,
        "lakeRoot": lake.root,
        "inputs": inputs,
        "records": records,
        "tables": tables if tables is not None else demo_tables(),
        "cursorField": cursor,
    }


def split(engine: Any, lake: Lake, run_id: int, parts: Sequence[Sequence[Record]], **spec_fields: Any) -> Dict[str, Any]:
    """Writes the parts and runs split_tables on them on the engine (conftest's `engine` fixture)."""
    inputs = lake.parts(run_id, parts)
    spec = transform_spec(lake, run_id, inputs, sum(len(p) for p in parts), **spec_fields)
    return engine.run_split(spec)


def manifest_key(run_id: int) -> str:
    return f"curated/_runs/source={SOURCE}/dt={DT}/run={run_id}/_manifest.json"


def rows(spark: Any, lake: Lake, manifest: Dict[str, Any], table: str, order_by: Sequence[str] = ()) -> List[Dict[str, Any]]:
    """The table's rows as the manifest lists them (exactly its files)."""
    files = [lake.root + "/" + f["key"] for f in manifest["tables"][table]["files"]]
    frame = spark.read.parquet(*files)
    if order_by:
        frame = frame.orderBy(*order_by)
    return [r.asDict(recursive=True) for r in frame.collect()]


@dataclass
class Pg:
    conn: Any
    schema: str
    url: str
    #: The schema Spark's twin load writes when the engine under test is the embedded one (see engines.py).
    twin: Optional[str] = None

    def rows(self, table: str, columns: str = "*", order_by: str = "1") -> List[tuple]:
        return self.conn.execute(f'SELECT {columns} FROM "{self.schema}"."{table}" ORDER BY {order_by}').fetchall()

    def count(self, table: str) -> int:
        return self.conn.execute(f'SELECT count(*) FROM "{self.schema}"."{table}"').fetchone()[0]

    def execute(self, sql: str) -> None:
        self.conn.execute(sql)
        if self.twin is not None:
            self.conn.execute(sql.replace(f'"{self.schema}"', f'"{self.twin}"'))


def staging_tables(pg: Pg) -> List[tuple]:
    """The load's staging tables left in the test's schema."""
    return pg.conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_name LIKE '\\_afl\\_stg%%'",
        (pg.schema,)).fetchall()


def load_spec(lake: Lake, run_id: int, pg: Pg, tables: Optional[Dict[str, Any]] = None,
              cursor_column: Optional[str] = None) -> Dict[str, Any]:
    return {
        "version": 1,
        "job": "load_warehouse",
        "runId": run_id,
        "jobId": run_id * 10 + 1,
        "source": SOURCE,
        "dt": DT,
        "lakeRoot": lake.root,
        "manifest": manifest_key(run_id),
        "tables": tables if tables is not None else demo_tables(),
        "cursorColumn": cursor_column,
        "warehouse": {"dialect": "postgres", "jdbcUrl": pg.url, "user": "postgres", "schema": pg.schema,
                      "copyRoleArn": None},
    }


def load(engine: Any, lake: Lake, run_id: int, pg: Pg, tables: Optional[Dict[str, Any]] = None,
         cursor_column: Optional[str] = None) -> Dict[str, Any]:
    return engine.run_load(load_spec(lake, run_id, pg, tables, cursor_column))


# Raw JSON lines for the typed load test: exact big numbers, unicode (emoji, CJK, combining accents, RTL,
# astral-plane letters), a timestamp with an offset, json values of several shapes, an unknown field.
NUMBER_LINES_FOR_LOAD = [
    '{"id":1,"big":9007199254740993,"wide":1234567890123456789012345678.0123456789,"money":0.01,'
    '"name":"🚀 東京 Ame\u0301lie","small":-32768,"ratio":0.1,"ok":true,"day":"2026-02-28",'
    '"at":"2026-11-23T10:00:00.123456Z","doc":{"a":[1,"two",null]},"labels":["ação","🙂"],"surprise":"😀"}',
    '{"id":2,"big":9223372036854775807,"wide":-0.0000000001,"money":99999999.99,'
    '"name":"𝔘𝔫𝔦\u05e9\u05dc\u05d5\u05dd","small":32767,"ratio":-1.5e300,"ok":false,"day":"1999-12-31",'
    '"at":"2026-11-23T00:00:00+01:00","doc":"a string","labels":["中文","e\u0301"]}',
    '{"id":3}',
]
