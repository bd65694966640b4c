"""A source's tables (contract/source-config.ts TableSpec, normalized) as the Spark steps read them.

Plain Python: no Spark here, so sql.py and its tests use it too. Every column in a normalized spec has
{path, type}; a path is a dot path into the record (the parent) or into the array element (a child), and
'.' (ELEMENT_PATH) is the element itself, for arrays of scalars.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .errors import SpecError, StepError

ELEMENT_PATH = "."
ELEMENT_COLUMN = "value"
EXTRA_COLUMN = "_extra"
INDEX_TYPE = "int"

SCALAR_TYPES = ("bigint", "int", "smallint", "string", "boolean", "double", "date", "timestamp", "json")
# Kinds whose values order the same way in Spark and in both warehouses (text and json do not).
ORDERED_KINDS = ("bigint", "int", "smallint", "double", "decimal", "date", "timestamp")
DECIMAL_MAX_PRECISION = 38
UNKNOWN_FIELDS_MODES = ("ignore", "keep", "reject")
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_DECIMAL = re.compile(r"^decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$")

@dataclass(frozen=True)
class ColumnType:
    kind: str
    precision: int = 0
    scale: int = 0

    @staticmethod
    def parse(text: str) -> "ColumnType":
        if text in SCALAR_TYPES:
            return ColumnType(text)
        match = _DECIMAL.match(text) if isinstance(text, str) else None
        if match is None:
            raise SpecError(f"column type {text!r} is not one of {', '.join(SCALAR_TYPES)} or decimal(p,s)")
        precision, scale = int(match.group(1)), int(match.group(2))
        if not 1 <= precision <= DECIMAL_MAX_PRECISION or scale > precision:
            raise SpecError(f"column type {text!r} needs 1 <= p <= {DECIMAL_MAX_PRECISION} and s <= p")
        return ColumnType("decimal", precision, scale)

    def __str__(self) -> str:
        return f"decimal({self.precision},{self.scale})" if self.kind == "decimal" else self.kind


JSON = ColumnType("json")


@dataclass(frozen=True)
class Column:
    name: str
    #: Segments of the dot path; () is the array element itself ('.').
    path: Tuple[str, ...]
    type: ColumnType

    @property
    def dotted(self) -> str:
        return ".".join(self.path) if self.path else ELEMENT_PATH


@dataclass(frozen=True)
class Table:
    name: str
    #: Path of the array a child is taken from (segments); None for the parent.
    source: Optional[Tuple[str, ...]]
    #: (child column, parent key column) pairs, in the spec's order.
    parent_key: Tuple[Tuple[str, str], ...]
    key: Tuple[str, ...]
    index: Optional[str]
    columns: Tuple[Column, ...]
    unknown_fields: str

    @property
    def is_child(self) -> bool:
        return self.source is not None

    @property
    def keeps_extra(self) -> bool:
        return self.unknown_fields == "keep"

    def get_type(self, column: str) -> ColumnType:
        for c in self.columns:
            if c.name == column:
                return c.type
        raise KeyError(column)

    @property
    def reads_element(self) -> bool:
        """True when a column reads the array element itself (an array of scalars)."""
        return any(not c.path for c in self.columns)


@dataclass(frozen=True)
class OutputColumn:
    name: str
    type: ColumnType


@dataclass(frozen=True)
class Tables:
    parent: Table
    children: Tuple[Table, ...]

    @property
    def all(self) -> Tuple[Table, ...]:
        return (self.parent,) + self.children

    def get(self, name: str) -> Table:
        for table in self.all:
            if table.name == name:
                return table
        raise KeyError(name)

    def output_columns(self, table: Table) -> List[OutputColumn]:
        """The columns a table has in the lake and the warehouse, in order: the parent key columns (children),
        the index column (children with `index`), the declared columns, then `_extra` when unknownFields=keep."""
        out: List[OutputColumn] = []
        if table.is_child:
            parent_types = {c.name: c.type for c in self.parent.columns}
            out.extend(OutputColumn(child, parent_types[parent]) for child, parent in table.parent_key)
            if table.index is not None:
                out.append(OutputColumn(table.index, ColumnType(INDEX_TYPE)))
        out.extend(OutputColumn(c.name, c.type) for c in table.columns)
        if table.keeps_extra:
            out.append(OutputColumn(EXTRA_COLUMN, JSON))
        return out

    def parent_key_columns(self) -> List[str]:
        return list(self.parent.key)


def split_path(path: str, where: str) -> Tuple[str, ...]:
    if path == ELEMENT_PATH:
        return ()
    if not isinstance(path, str) or path == "" or any(seg == "" for seg in path.split(".")):
        raise SpecError(f"{where}: path {path!r} is not a dot path")
    return tuple(path.split("."))


def read_tables(raw: Mapping[str, Any]) -> Tables:
    """Reads the `tables` of a spec (already normalized and validated by the service) and checks what the
    steps rely on, so a malformed spec fails with a message instead of a Spark stack trace."""
    if not isinstance(raw, Mapping) or not raw:
        raise SpecError("tables must be a non-empty map of table name to TableSpec")
    tables: List[Table] = []
    for name, spec in raw.items():
        tables.append(_read_table(name, spec))
    parents = [t for t in tables if not t.is_child]
    if len(parents) != 1:
        raise SpecError(f"tables need exactly one table without \"from\", found {len(parents)}")
    parent = parents[0]
    children = tuple(t for t in tables if t.is_child)
    parent_columns = {c.name: c for c in parent.columns}
    for key in parent.key:
        if key not in parent_columns:
            raise SpecError(f"table {parent.name}: key column {key!r} is not one of its columns")
    for child in children:
        if child.reads_element and len(child.columns) > 1:
            # The element is either a scalar (read whole) or an object (read by field), not both.
            raise SpecError(
                f"table {child.name}: a column with path '.' reads the whole element, so it must be the only column"
            )
        for column, parent_column in child.parent_key:
            if parent_column not in parent.key:
                raise SpecError(
                    f"table {child.name}: parentKey {column} -> {parent_column} is not a key column of {parent.name}"
                )
        missing = [k for k in parent.key if k not in {p for _, p in child.parent_key}]
        if missing:
            raise SpecError(f"table {child.name}: parentKey must map every key column of {parent.name}; missing {missing}")
        declared = [c for c, _ in child.parent_key] + ([child.index] if child.index else []) + [c.name for c in child.columns]
        if len(set(declared)) != len(declared):
            raise SpecError(f"table {child.name}: a column is declared twice across parentKey, index and columns")
        for key in child.key:
            if key not in declared:
                raise SpecError(f"table {child.name}: key column {key!r} is not one of its columns")
    for table in tables:
        names = [c.name for c in table.columns]
        if table.keeps_extra and EXTRA_COLUMN in names:
            raise SpecError(f"table {table.name}: column {EXTRA_COLUMN} is reserved for unknownFields: keep")
    return Tables(parent, children)


def _read_table(name: str, spec: Any) -> Table:
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        raise SpecError(f"table name {name!r} is not a valid identifier")
    if not isinstance(spec, Mapping):
        raise SpecError(f"table {name}: must be a TableSpec object")
    source = spec.get("from")
    key = spec.get("key")
    if not isinstance(key, list) or not key or not all(isinstance(k, str) for k in key):
        raise SpecError(f"table {name}: key must be a non-empty list of column names")
    raw_columns = spec.get("columns")
    if not isinstance(raw_columns, Mapping) or not raw_columns:
        raise SpecError(f"table {name}: columns must be a non-empty map")
    columns = []
    for column_name, column in raw_columns.items():
        where = f"table {name} column {column_name}"
        if not isinstance(column_name, str) or not IDENTIFIER.match(column_name):
            raise SpecError(f"{where}: not a valid identifier")
        if not isinstance(column, Mapping) or "path" not in column or "type" not in column:
            raise SpecError(f"{where}: must be {{path, type}} (a normalized spec)")
        path = split_path(column["path"], where)
        if not path and source is None:
            raise SpecError(f"{where}: path '.' is only for a child table's element")
        columns.append(Column(column_name, path, ColumnType.parse(column["type"])))
    unknown = spec.get("unknownFields", "keep")
    if unknown not in UNKNOWN_FIELDS_MODES:
        raise SpecError(f"table {name}: unknownFields must be one of {', '.join(UNKNOWN_FIELDS_MODES)}")
    parent_key = spec.get("parentKey") or {}
    if source is not None and not parent_key:
        raise SpecError(f"table {name}: a child table (with from) needs parentKey")
    if source is None and (parent_key or spec.get("index") is not None):
        raise SpecError(f"table {name}: parentKey and index are only for a child table (with from)")
    index = spec.get("index")
    for column in list(parent_key) + ([index] if index is not None else []):
        if not isinstance(column, str) or not IDENTIFIER.match(column):
            raise SpecError(f"table {name}: {column!r} is not a valid column name")
    return Table(
        name=name,
        source=split_path(source, f"table {name} from") if source is not None else None,
        parent_key=tuple((str(k), str(v)) for k, v in parent_key.items()),
        key=tuple(key),
        index=index,
        columns=tuple(columns),
        unknown_fields=unknown,
    )


def cursor_parent_column(tables: Tables, cursor: Optional[Tuple[str, ...]]) -> Optional[str]:
    """The parent column that reads exactly the cursor field's path (not a json one), if there is one."""
    if cursor is None:
        return None
    for column in tables.parent.columns:
        if column.path == cursor and column.type.kind != "json":
            return column.name
    return None


def read_cursor_column(spec: Mapping[str, Any], tables: Tables, what: str) -> Optional[str]:
    """A load spec's cursorColumn: null (or absent, from an older service), or an ordered parent column."""
    name = spec.get("cursorColumn")
    if name is None:
        return None
    if not isinstance(name, str):
        raise SpecError(f"{what}: 'cursorColumn' must be a column name or null")
    parent = tables.parent
    try:
        kind = parent.get_type(name).kind
    except KeyError:
        raise SpecError(f"{what}: 'cursorColumn' {name!r} is not a column of table {parent.name}") from None
    if kind not in ORDERED_KINDS:
        raise SpecError(f"{what}: 'cursorColumn' {name!r} is {kind}, not one of {', '.join(ORDERED_KINDS)}")
    return name


def require(doc: Mapping[str, Any], field: str, kind: Any, what: str) -> Any:
    """A field of a spec or manifest, of the given Python type(s), or a SpecError naming it."""
    if not isinstance(doc, Mapping) or field not in doc:
        raise SpecError(f"{what} has no {field!r}")
    value = doc[field]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SpecError(f"{what}: {field!r} has the wrong type ({type(value).__name__})")
    return value


def check_spec_header(spec: Mapping[str, Any], job: str) -> None:
    if not isinstance(spec, Mapping):
        raise SpecError("the spec is not a JSON object")
    if spec.get("version") != 1:
        raise SpecError(f"spec version {spec.get('version')!r} is not 1")
    if spec.get("job") != job:
        raise SpecError(f"the spec is for job {spec.get('job')!r}, not {job}")


def curated_prefix(table: str, dt: str, run_id: int) -> str:
    """contract/lake-layout.ts curatedPrefix."""
    return f"curated/{table}/dt={dt}/run={run_id}/"


def curated_manifest_key(source: str, dt: str, run_id: int) -> str:
    """contract/steps.ts curatedManifestKey."""
    return f"curated/_runs/source={source}/dt={dt}/run={run_id}/_manifest.json"


def load_result_key(source: str, dt: str, run_id: int) -> str:
    """contract/steps.ts loadResultKey."""
    return f"steps/source={source}/dt={dt}/run={run_id}/load_warehouse.result.json"


def column_types(tables: Tables) -> Dict[str, Dict[str, ColumnType]]:
    return {t.name: {c.name: c.type for c in tables.output_columns(t)} for t in tables.all}


@dataclass(frozen=True)
class TransformStep:
    """A TransformSpec (contract/steps.ts), checked: what split_tables needs, for either engine."""
    run_id: int
    source: str
    dt: str
    root: str
    inputs: Tuple[str, ...]
    records: int
    cursor_field: Optional[str]
    tables: Tables


def read_transform_spec(spec: Mapping[str, Any], job: str, lake_root: Optional[str] = None) -> TransformStep:
    check_spec_header(spec, job)
    what = "the transform spec"
    run_id = require(spec, "runId", int, what)
    source = require(spec, "source", str, what)
    dt = require(spec, "dt", str, what)
    root = lake_root or require(spec, "lakeRoot", str, what)
    inputs = require(spec, "inputs", list, what)
    if not all(isinstance(k, str) for k in inputs):
        raise SpecError(f"{what}: inputs must be keys (strings)")
    records = require(spec, "records", int, what)
    cursor_field = spec.get("cursorField")
    if cursor_field is not None and not isinstance(cursor_field, str):
        raise SpecError(f"{what}: cursorField must be a string or null")
    tables = read_tables(require(spec, "tables", dict, what))
    return TransformStep(run_id, source, dt, root, tuple(inputs), records, cursor_field, tables)


@dataclass(frozen=True)
class LoadStep:
    """A LoadSpec (contract/steps.ts), checked: what load_warehouse needs, for either engine."""
    run_id: int
    source: str
    dt: str
    #: The root the step reads and writes (--lake-root, else the spec's).
    root: str
    #: The spec's own lakeRoot: where COPY finds the curated files when the step runs on a staged copy.
    spec_root: str
    manifest_key: str
    tables: Tables
    cursor_column: Optional[str]
    dialect: str
    url: str
    schema: str
    user: Optional[str]
    copy_role_arn: Optional[str]


def read_load_spec(spec: Mapping[str, Any], job: str, dialects: Tuple[str, ...],
                   lake_root: Optional[str] = None) -> LoadStep:
    check_spec_header(spec, job)
    what = "the load spec"
    run_id = require(spec, "runId", int, what)
    source = require(spec, "source", str, what)
    dt = require(spec, "dt", str, what)
    spec_root = require(spec, "lakeRoot", str, what)
    manifest_key = require(spec, "manifest", str, what)
    tables = read_tables(require(spec, "tables", dict, what))
    cursor_column = read_cursor_column(spec, tables, what)
    warehouse = require(spec, "warehouse", dict, what)
    dialect = require(warehouse, "dialect", str, "the load spec's warehouse")
    if dialect not in dialects:
        raise SpecError(f"warehouse dialect {dialect!r} is not one of {', '.join(dialects)}")
    url = require(warehouse, "jdbcUrl", str, "the load spec's warehouse")
    schema = require(warehouse, "schema", str, "the load spec's warehouse")
    role_arn = warehouse.get("copyRoleArn")
    if dialect == "redshift" and not role_arn:
        raise SpecError("a redshift load needs warehouse.copyRoleArn")
    return LoadStep(run_id, source, dt, lake_root or spec_root, spec_root, manifest_key, tables, cursor_column,
                    dialect, url, schema, warehouse.get("user"), role_arn)


def check_transform_manifest(manifest: Any, key: str, run_id: int, tables: Tables) -> Mapping[str, Any]:
    """The transform manifest a load reads, checked against the run and the tables it loads."""
    what = f"the transform manifest {key}"
    if not isinstance(manifest, Mapping) or manifest.get("version") != 1 or manifest.get("stage") != "transform":
        raise SpecError(f"{what} is not a version 1 transform manifest")
    if require(manifest, "runId", int, what) != run_id:
        raise SpecError(f"{what} is for run {manifest['runId']}, not run {run_id}")
    listed = require(manifest, "tables", dict, what)
    for table in tables.all:
        entry = listed.get(table.name)
        if not isinstance(entry, dict) or not isinstance(entry.get("files"), list):
            raise SpecError(f"{what} lists no files for table {table.name}")
    return manifest


def ledger_stale(tables: Tables, cursor_column: Optional[str], manifest: Mapping[str, Any],
                 rows: Mapping[str, int]) -> Dict[str, int]:
    """The stale rows of a load the ledger already holds. The ledger keeps only the rows merged, so with a cursor
    column the stale rows are what the merge fell short of the curated rows; without one there were none."""
    stale = {}
    for table in tables.all:
        short = int(manifest["tables"][table.name].get("rows", 0)) - rows.get(table.name, 0)
        stale[table.name] = max(0, short) if cursor_column is not None else 0
    return stale


def s3_root(root: str, spec_root: str) -> str:
    """The s3:// root a Redshift COPY reads the curated files from: the effective root when it is on S3, else
    the spec's (a runner that staged the lake in a local folder)."""
    for candidate in (root, spec_root):
        for scheme in ("s3://", "s3a://", "s3n://"):
            if candidate.startswith(scheme):
                return "s3://" + candidate[len(scheme):]
    raise SpecError(f"redshift COPY reads from S3, but the lake root {root} is not an s3:// URI")


def transform_manifest(step: TransformStep, read: int, duplicates: int, elements: Mapping[str, int],
                       written: Mapping[str, Any]) -> Dict[str, Any]:
    """The TransformManifest (contract/steps.ts) of a split that read `read` records, dropped `duplicates`, and
    wrote `written` (each table's prefix, rows and files); `elements` are each child's rows before its dedupe.
    Fails unless the parent's rows reconcile: read = parent rows + duplicates."""
    tables = step.tables
    parent = tables.parent
    if written[parent.name]["rows"] != read - duplicates:
        raise StepError(
            f"wrote {written[parent.name]['rows']} rows to {parent.name}, expected {read} read - {duplicates} duplicates"
        )
    return {
        "version": 1,
        "stage": "transform",
        "runId": step.run_id,
        "source": step.source,
        "dt": step.dt,
        "read": read,
        "duplicates": duplicates,
        "childDuplicates": {c.name: elements[c.name] - written[c.name]["rows"] for c in tables.children},
        "tables": dict(written),
    }
