"""split_tables' transforms: pure functions from DataFrames to DataFrames (no I/O here; see split_job.py).

The input is one row per validated record: `value` (the JSON line), `_afl_file` (the part's position in the
spec's `inputs`) and `_afl_pos` (increasing with the line within a part). `parse_records` reads each line with
the explicit typed schema and keeps only what the tables need; `rank_records` marks the record that wins each
parent key; `parent_rows` and `child_rows` give the tables' rows, with the columns of `Tables.output_columns`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from .errors import SpecError
from .schema import raw_arrays_schema, record_schema
from .spec import EXTRA_COLUMN, ORDERED_KINDS, Table, Tables, cursor_parent_column

LINE = "value"
FILE = "_afl_file"
POS = "_afl_pos"
REC = "_afl_rec"
RAW = "_afl_raw"
PARENT = "_afl_parent"
RN = "_afl_rn"
ELEM_POS = "_afl_elem_pos"
ELEM = "_afl_elem"
CURSOR_TEXT = "_afl_cursor_text"
CORRUPT = "_afl_corrupt"


def json_path(segments: Sequence[str], root: str = "$") -> str:
    """A get_json_object path for a field path; bracket notation so '.', ' ' and '*' in a name are literal."""
    parts = [root]
    for segment in segments:
        if "'" not in segment:
            parts.append(f"['{segment}']")
        elif "." not in segment and "[" not in segment and segment != "*":
            parts.append(f".{segment}")
        else:
            raise SpecError(f"field name {segment!r} (with a quote and a '.' or '[') cannot be read as JSON text")
    return "".join(parts)


def _wrapped(doc: Column) -> Column:
    # get_json_object quotes a string only below an array wildcard: `$[*].a` over `[doc]` gives "x", not x.
    return F.concat(F.lit("["), doc, F.lit("]"))


def json_text(doc: Column, segments: Sequence[str]) -> Column:
    """The exact JSON text of the value at `segments` in the JSON document `doc` (strings keep their quotes);
    null when the value is missing or JSON null."""
    return _null_if_json_null(F.get_json_object(_wrapped(doc), json_path(segments, "$[*]")))


def _null_if_json_null(text: Column) -> Column:
    return F.when(text != F.lit("null"), text)


def extra_json(doc: Column, known: Sequence[str]) -> Column:
    """A JSON object of the top-level fields of `doc` whose names are not in `known`; null when there are none
    or `doc` is not an object. Built without a Python UDF: the keys come from json_object_keys, each value's
    exact JSON text from get_json_object."""
    keys = F.json_object_keys(doc)
    unknown = F.filter(keys, lambda k: ~k.isin(list(known))) if known else keys
    wrapped = _wrapped(doc)

    def entry(k: Column) -> Column:
        path = F.when(F.instr(k, "'") == 0, F.concat(F.lit("$[*]['"), k, F.lit("']"))).otherwise(
            F.concat(F.lit("$[*]."), k)
        )
        value = F.coalesce(F.call_function("get_json_object", wrapped, path), F.lit("null"))
        quoted_key = F.regexp_extract(F.to_json(F.array(k)), r"^\[(.*)\]$", 1)
        return F.concat(quoted_key, F.lit(":"), value)

    return F.when(
        F.size(unknown) > 0,
        F.concat(F.lit("{"), F.array_join(F.transform(unknown, entry), ","), F.lit("}")),
    )


def _field(base: Column, segments: Sequence[str]) -> Column:
    column = base
    for segment in segments:
        column = column.getField(segment)
    return column


def _arr(i: int) -> str:
    return f"_afl_arr_{i}"


def _raw_arr(i: int) -> str:
    return f"_afl_rawarr_{i}"


@dataclass(frozen=True)
class SplitPlan:
    tables: Tables
    cursor: Optional[Tuple[str, ...]]
    record_schema: T.StructType
    raw_schema: Optional[T.StructType]
    #: Children that need their elements' raw JSON text (`_extra` or json columns inside an object element).
    raw_children: Tuple[str, ...]
    #: Children that read the element itself as json: they need the whole line.
    line_children: Tuple[str, ...]

    @staticmethod
    def build(tables: Tables, cursor_field: Optional[str]) -> "SplitPlan":
        cursor = tuple(cursor_field.split(".")) if cursor_field else None
        raw_children = []
        line_children = []
        for child in tables.children:
            json_columns = [c for c in child.columns if c.type.kind == "json"]
            if any(not c.path for c in json_columns):
                line_children.append(child.name)
            if any(c.path for c in json_columns) or (child.keeps_extra and not child.reads_element):
                raw_children.append(child.name)
        for table in tables.all:
            for column in table.columns:
                if column.type.kind == "json":
                    json_path(column.path)  # fails early on a name it cannot address
        if cursor is not None:
            json_path(cursor)
        sources = [c.source for c in tables.children if c.name in raw_children and c.source is not None]
        return SplitPlan(
            tables=tables,
            cursor=cursor,
            record_schema=record_schema(tables),
            raw_schema=raw_arrays_schema(sources),
            raw_children=tuple(raw_children),
            line_children=tuple(line_children),
        )

    def child_index(self, child: Table) -> int:
        return list(self.tables.children).index(child)

    @property
    def cursor_column(self) -> Optional[str]:
        """The parent column the cursor is, when a typed parent column reads exactly the cursor's path."""
        return cursor_parent_column(self.tables, self.cursor)

    @property
    def cursor_columns(self) -> List[str]:
        """The columns `rank_records` orders by, greatest first (before input order)."""
        if self.cursor is None:
            return []
        name = self.cursor_column
        # Cursor columns of these types order by their typed value; others are compared as text (see cursor_order).
        if name is not None and self.tables.parent.get_type(name).kind in ORDERED_KINDS:
            return ["_afl_cursor_value"]
        return ["_afl_cursor_num", "_afl_cursor_ts", CURSOR_TEXT]


def _parent_known_fields(tables: Tables) -> List[str]:
    known = {c.path[0] for c in tables.parent.columns if c.path}
    known.update(child.source[0] for child in tables.children if child.source)
    return sorted(known)


def parse_records(lines: DataFrame, plan: SplitPlan, mode: str = "FAILFAST") -> DataFrame:
    """One row per record: _afl_file, _afl_pos, the parent row as a struct (_afl_parent), the cursor ordering
    columns, each child's `from` array (_afl_arr_<i>) and, when needed, its raw elements and the line.
    FAILFAST: a value that does not fit its column's type fails the job instead of becoming null."""
    tables = plan.tables
    parent = tables.parent
    line = F.col(LINE)
    selected = [F.col(FILE), F.col(POS), F.from_json(line, plan.record_schema, {"mode": mode}).alias(REC)]
    if plan.raw_schema is not None:
        selected.append(F.from_json(line, plan.raw_schema, {"mode": mode}).alias(RAW))
    parent_fields = []
    for column in parent.columns:
        if column.type.kind == "json":
            value = json_text(line, column.path)
        else:
            value = _field(F.col(REC), column.path)
        parent_fields.append(value.alias(column.name))
    if parent.keeps_extra:
        parent_fields.append(extra_json(line, _parent_known_fields(tables)).alias(EXTRA_COLUMN))
    selected.append(F.struct(*parent_fields).alias(PARENT))
    if plan.cursor is not None:
        name = plan.cursor_column
        if name is not None:
            cursor = _field(F.col(REC), plan.cursor)
            if parent.get_type(name).kind in ORDERED_KINDS:
                selected.append(cursor.alias("_afl_cursor_value"))
            else:
                selected.append(cursor.cast("string").alias(CURSOR_TEXT))
        else:
            selected.append(F.get_json_object(line, json_path(plan.cursor)).alias(CURSOR_TEXT))
    for i, child in enumerate(tables.children):
        assert child.source is not None
        selected.append(_field(F.col(REC), child.source).alias(_arr(i)))
        if child.name in plan.raw_children:
            selected.append(_field(F.col(RAW), child.source).alias(_raw_arr(i)))
    if plan.line_children:
        selected.append(line.alias(LINE))
    records = lines.select(*selected).drop(REC, RAW)
    if CURSOR_TEXT in records.columns:
        # Numbers compare as numbers, other timestamps as timestamps, anything else as text.
        records = records.withColumn("_afl_cursor_num", F.expr(f"try_cast({CURSOR_TEXT} AS DECIMAL(38,9))"))
        records = records.withColumn(
            "_afl_cursor_ts",
            F.when(F.col("_afl_cursor_num").isNull(), F.expr(f"try_cast({CURSOR_TEXT} AS TIMESTAMP)")),
        )
    return records


def rank_records(records: DataFrame, plan: SplitPlan) -> DataFrame:
    """Adds _afl_rn: 1 for the record that wins its parent key (greatest cursor, then the later input)."""
    keys = [F.col(f"{PARENT}.{k}") for k in plan.tables.parent.key]
    order = [F.col(c).desc_nulls_last() for c in plan.cursor_columns] + [F.col(FILE).desc(), F.col(POS).desc()]
    return records.withColumn(RN, F.row_number().over(Window.partitionBy(*keys).orderBy(*order)))


def _size(column: Column) -> Column:
    return F.when(column.isNull(), F.lit(0)).otherwise(F.size(column))


def stats_columns(plan: SplitPlan) -> List[Column]:
    """Aggregates over ranked records: read, duplicates, null_keys, unmapped (rows whose part was not
    recognised), and elements_<i>: the winning records' elements of each child's array."""
    columns = [
        F.count(F.lit(1)).alias("read"),
        F.sum(F.when(F.col(RN) != 1, 1).otherwise(0)).alias("duplicates"),
        F.sum(F.when(null_key_condition(plan), 1).otherwise(0)).alias("null_keys"),
        F.sum(F.when(F.col(FILE).isNull(), 1).otherwise(0)).alias("unmapped"),
    ]
    for i, _ in enumerate(plan.tables.children):
        columns.append(F.sum(F.when(F.col(RN) == 1, _size(F.col(_arr(i)))).otherwise(0)).alias(f"elements_{i}"))
    return columns


def null_key_condition(plan: SplitPlan) -> Column:
    condition = F.lit(False)
    for k in plan.tables.parent.key:
        condition = condition | F.col(f"{PARENT}.{k}").isNull()
    return condition


def winners(ranked: DataFrame) -> DataFrame:
    return ranked.filter(F.col(RN) == 1)


def parent_rows(winning: DataFrame, plan: SplitPlan) -> DataFrame:
    return winning.select(f"{PARENT}.*")


def child_rows(winning: DataFrame, plan: SplitPlan, child: Table) -> DataFrame:
    """The child's rows: one per element of its `from` array (posexplode: empty, null or missing arrays give
    none), with the parent key columns and the index. Within a parent, of the elements with the same key
    the last one is kept."""
    i = plan.child_index(child)
    assert child.source is not None
    carried = [F.col(f"{PARENT}.{parent_column}").alias(column) for column, parent_column in child.parent_key]
    extra_inputs = []
    if child.name in plan.raw_children:
        extra_inputs.append(F.col(_raw_arr(i)))
    if child.name in plan.line_children:
        extra_inputs.append(F.col(LINE))
    exploded = winning.select(*carried, *extra_inputs, F.posexplode(F.col(_arr(i))).alias(ELEM_POS, ELEM))
    element = F.col(ELEM)
    raw_element = F.element_at(F.col(_raw_arr(i)), F.col(ELEM_POS) + 1) if child.name in plan.raw_children else None
    out = [F.col(column) for column, _ in child.parent_key]
    if child.index is not None:
        out.append(F.col(ELEM_POS).alias(child.index))
    for column in child.columns:
        if column.type.kind != "json":
            value = _field(element, column.path)
        elif column.path:
            assert raw_element is not None
            value = json_text(raw_element, column.path)
        else:
            path = F.concat(F.lit(json_path(child.source, "$[*]") + "["), F.col(ELEM_POS).cast("string"), F.lit("]"))
            value = _null_if_json_null(F.call_function("get_json_object", _wrapped(F.col(LINE)), path))
        out.append(value.alias(column.name))
    if child.keeps_extra:
        if child.reads_element or raw_element is None:
            out.append(F.lit(None).cast("string").alias(EXTRA_COLUMN))
        else:
            known = sorted({c.path[0] for c in child.columns if c.path})
            out.append(extra_json(raw_element, known).alias(EXTRA_COLUMN))
    rows = exploded.select(*out, F.col(ELEM_POS))
    names = [c.name for c in plan.tables.output_columns(child)]
    if child.index is not None and child.index in child.key:
        # The element's position is in the key: within one parent no two elements share a key.
        return rows.select(*names)
    partition = list(dict.fromkeys([column for column, _ in child.parent_key] + list(child.key)))
    window = Window.partitionBy(*[F.col(c) for c in partition]).orderBy(F.col(ELEM_POS).desc())
    return rows.withColumn(RN, F.row_number().over(window)).filter(F.col(RN) == 1).select(*names)


def with_corrupt_column(schema: T.StructType) -> T.StructType:
    return T.StructType(list(schema.fields) + [T.StructField(CORRUPT, T.StringType(), True)])


def corrupt_lines(lines: DataFrame, plan: SplitPlan) -> DataFrame:
    """The lines the typed schema cannot read (PERMISSIVE mode, to find where a FAILFAST read failed)."""
    options = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT}
    parsed = F.from_json(F.col(LINE), with_corrupt_column(plan.record_schema), options)
    return lines.select(FILE, POS, LINE, parsed.getField(CORRUPT).alias(CORRUPT)).filter(F.col(CORRUPT).isNotNull())

