"""split_tables as DuckDB SQL, built from the tables' spec. Plain string building, no I/O (see split_job.py).

The rules are the Spark job's (afluente_spark/split.py and spark/README.md), so both engines write the same rows:

- A record is read with a typed structure holding exactly what the tables read (`from_json`), never inferred.
  DuckDB reads a decimal from the number's own digits, so big decimals and big integers stay exact.
- DuckDB's `from_json` coerces where Spark's FAILFAST reader refuses ("1" into a bigint, 1.5 into an int, a
  string where an object belongs). So every value read is checked against its JSON type the way Spark's reader
  takes it (`json_type`), and a record that Spark would refuse fails the step here too.
- `json` columns and `_extra` hold the value's JSON text; JSON null is SQL NULL.
- One record wins per parent key: the greatest cursor, then the later part, then the later line.
- A child row per element of the winning record's array; within a parent, the last element of a key wins.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from afluente_spark.errors import SpecError
from afluente_spark.spec import EXTRA_COLUMN, ORDERED_KINDS, ColumnType, Table, Tables, cursor_parent_column

from .lines import LINE, LINES, PART, POS

RECORDS = "afl_records"
WINNERS = "afl_winners"
TYPED = "afl_r"
RAW = "afl_w"
TOKENS = "afl_t"
BAD = "afl_bad"
EXTRA = "afl_extra"
ELEMENT_INDEX = "afl_i"

_INTEGERS = ("BIGINT", "UBIGINT")
_NUMBERS = ("BIGINT", "UBIGINT", "DOUBLE")
_DATE_PREFIX = r"^\s*([+-]?\d{4,}-\d{1,2}-\d{1,2})"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def duck_type(column_type: ColumnType) -> str:
    """The type of a column in the curated Parquet: what Spark writes for it. Timestamps are instants
    (TIMESTAMPTZ is Parquet's isAdjustedToUTC=true, as Spark's TimestampType)."""
    kind = column_type.kind
    if kind == "decimal":
        return f"DECIMAL({column_type.precision},{column_type.scale})"
    return {
        "bigint": "BIGINT", "int": "INTEGER", "smallint": "SMALLINT", "string": "VARCHAR", "boolean": "BOOLEAN",
        "double": "DOUBLE", "date": "DATE", "timestamp": "TIMESTAMPTZ", "json": "VARCHAR",
    }[kind]


_AS_TEXT = ("date", "timestamp", "double")
#: The strings Spark's reader takes for a double (diagnose._DOUBLE_WORDS), as DuckDB spells the values.
_DOUBLE_WORDS = {"NaN": "NaN", "Infinity": "Infinity", "+Infinity": "Infinity", "-Infinity": "-Infinity",
                 "INF": "Infinity", "+INF": "Infinity", "-INF": "-Infinity"}


def _read_type(column_type: ColumnType) -> str:
    """The type `from_json` reads a value as: dates, timestamps and doubles as text, converted by `_converted`
    (a double's text is parsed from its own digits, and its JSON type decides which strings are allowed)."""
    return "VARCHAR" if column_type.kind in _AS_TEXT else duck_type(column_type)


def pointer(path: Sequence[str]) -> str:
    """A JSON pointer (RFC 6901): any key name is addressable, '.' and quotes included."""
    return "".join("/" + segment.replace("~", "~0").replace("/", "~1") for segment in path)


def _field(base: str, path: Sequence[str]) -> str:
    expression = base
    for segment in path:
        expression = f"{expression}[{literal(segment)}]"
    return expression


def _converted(value: str, column_type: ColumnType) -> str:
    """A value as read by `from_json`, as its column's type. Spark takes a date from the start of the text (a
    timestamp's date too), a timestamp as ISO-8601 with an optional offset."""
    if column_type.kind == "date":
        return f"TRY_CAST(regexp_extract({value}, {literal(_DATE_PREFIX)}, 1) AS DATE)"
    if column_type.kind == "double":
        words = " ".join(f"WHEN {literal(w)} THEN CAST({literal(v)} AS DOUBLE)" for w, v in _DOUBLE_WORDS.items())
        return f"CASE {value} {words} ELSE TRY_CAST({value} AS DOUBLE) END"
    if column_type.kind == "timestamp":
        # A JSON number is seconds since the epoch, as Spark takes it.
        return f"coalesce(TRY_CAST({value} AS TIMESTAMPTZ), try(to_timestamp(TRY_CAST({value} AS DOUBLE))))"
    return value


def _in(token: str, names: Sequence[str]) -> str:
    return f"{token} IN ({', '.join(literal(n) for n in names)})"


def leaf_bad(token: str, read: str, column_type: ColumnType) -> Optional[str]:
    """True when Spark's JSON reader would refuse the value whose JSON type is `token` (SQL NULL when the field
    is missing) for the column; `read` is what `from_json` read (NULL when its cast failed). See diagnose.fits."""
    value = _converted(read, column_type)
    kind = column_type.kind
    present = f"{token} IS NOT NULL AND {token} <> 'NULL'"
    if kind in ("string", "json"):
        return None
    if kind in ("bigint", "int", "smallint"):
        wrong = f"NOT {_in(token, _INTEGERS)} OR {value} IS NULL"
    elif kind == "boolean":
        wrong = f"{token} <> 'BOOLEAN'"
    elif kind == "double":
        wrong = f"NOT {_in(token, _NUMBERS)} OR {value} IS NULL"
        wrong = f"({wrong}) AND NOT ({token} = 'VARCHAR' AND {_in(read, tuple(_DOUBLE_WORDS))})"
    elif kind == "decimal":
        wrong = f"NOT {_in(token, _NUMBERS + ('VARCHAR',))} OR {value} IS NULL"
    elif kind == "date":
        wrong = f"{token} <> 'VARCHAR' OR {value} IS NULL"
    else:  # a timestamp is ISO-8601 text or a number of seconds, never a number in a string
        wrong = (f"NOT {_in(token, _NUMBERS + ('VARCHAR',))} OR {value} IS NULL "
                 f"OR ({token} = 'VARCHAR' AND TRY_CAST({read} AS TIMESTAMPTZ) IS NULL)")
    return f"({present} AND ({wrong}))"


def _any(conditions: Sequence[str]) -> str:
    return "(" + " OR ".join(conditions) + ")" if conditions else "false"


class _Structure:
    """The typed structure `from_json` reads a record with, built like afluente_spark/schema.py's: one type per
    field, or a SpecError naming both readers."""

    def __init__(self) -> None:
        self.root: Dict[str, Any] = {}
        self.owners: Dict[Tuple[str, ...], str] = {}

    def put(self, path: Tuple[str, ...], node: Any, owner: str) -> None:
        current = self.root
        for depth, segment in enumerate(path[:-1]):
            here = path[: depth + 1]
            existing = current.setdefault(segment, {})
            if not isinstance(existing, dict):
                raise SpecError(f"{owner} reads {'.'.join(path)} inside {'.'.join(here)}, but "
                                f"{self.owners.get(here, 'another column')} reads {'.'.join(here)} as a value")
            self.owners.setdefault(here, owner)
            current = existing
        last = path[-1]
        if last in current and current[last] != node:
            raise SpecError(f"{owner} reads {'.'.join(path)} as {json.dumps(node)}, but "
                            f"{self.owners.get(path, 'another column')} reads it as {json.dumps(current[last])}: "
                            "a field can be read with one type only")
        current[last] = node
        self.owners.setdefault(path, owner)

    def sql(self) -> str:
        return literal(json.dumps(self.root))


def _typed_columns(table: Table):
    return [c for c in table.columns if c.type.kind != "json"]


def _element_node(child: Table) -> Any:
    typed = _typed_columns(child)
    if not typed:
        return None
    if not typed[0].path:
        return [_read_type(typed[0].type)]
    element = _Structure()
    for column in typed:
        element.put(column.path, _read_type(column.type), f"column {child.name}.{column.name}")
    return [element.root]


def _prefixes(path: Sequence[str]) -> List[Tuple[str, ...]]:
    return [tuple(path[:n]) for n in range(1, len(path))]


@dataclass(frozen=True)
class ChildPlan:
    table: Table
    index: int
    #: Whether the typed array (afl_a<i>) exists: the child has a typed column.
    typed: bool
    #: Whether the raw elements (afl_w<i>, JSON text) are kept for the table's rows.
    raw: bool

    @property
    def typed_array(self) -> str:
        return f"afl_a{self.index}"

    @property
    def raw_array(self) -> str:
        return f"afl_w{self.index}"


class SplitPlan:
    """The SQL of one split: `records()` reads and checks every line, `winners()` keeps one record per parent
    key, `table_rows()` gives each table's rows with its output columns."""

    def __init__(self, tables: Tables, cursor_field: Optional[str]) -> None:
        self.tables = tables
        self.cursor = tuple(cursor_field.split(".")) if cursor_field else None
        parent = tables.parent
        typed = _Structure()
        raw = _Structure()
        for column in _typed_columns(parent):
            typed.put(column.path, _read_type(column.type), f"column {parent.name}.{column.name}")
        self.children: List[ChildPlan] = []
        for i, child in enumerate(tables.children):
            assert child.source is not None
            node = _element_node(child)
            if node is not None:
                typed.put(child.source, node, f"table {child.name}")
            raw.put(child.source, ["JSON"], f"table {child.name}")
            keeps_raw = (node is None or any(c.type.kind == "json" for c in child.columns)
                         or (child.keeps_extra and not child.reads_element))
            self.children.append(ChildPlan(child, i, node is not None, keeps_raw))
        self.typed = typed
        self.raw = raw
        # The JSON types read in one parse of the line: the record, every object on a typed column's path, each
        # typed parent value, and each child's array and the objects above it.
        nodes: List[Tuple[Tuple[str, ...], str]] = []
        for column in _typed_columns(parent):
            nodes += [(p, "object") for p in _prefixes(column.path)]
            nodes.append((column.path, column.name))
        for child in tables.children:
            assert child.source is not None
            nodes += [(p, "object") for p in _prefixes(child.source)]
            nodes.append((child.source, "array"))
        self.token_nodes = list(dict.fromkeys(nodes))

    # the records ------------------------------------------------------------------------------------------

    def _token(self, node: Tuple[Tuple[str, ...], str]) -> str:
        return f"{TOKENS}[{self.token_nodes.index(node) + 2}]"  # [1] is the record itself

    def _parent_value(self, column) -> str:
        if column.type.kind == "json":
            return f"NULLIF(CAST(json_extract({LINE}, {literal(pointer(column.path))}) AS VARCHAR), 'null')"
        return _converted(_field(TYPED, column.path), column.type)

    def _bad(self) -> str:
        parent = self.tables.parent
        conditions = [f"{TOKENS}[1] IS DISTINCT FROM 'OBJECT'"]
        for node in self.token_nodes:
            path, role = node
            token = self._token(node)
            if role == "object":
                conditions.append(f"coalesce(NOT {_in(token, ('OBJECT', 'NULL'))}, false)")
            elif role == "array":
                conditions.append(f"coalesce(NOT {_in(token, ('ARRAY', 'NULL'))}, false)")
        for column in _typed_columns(parent):
            check = leaf_bad(self._token((column.path, column.name)), _field(TYPED, column.path), column.type)
            if check:
                conditions.append(check)
        for child in self.children:
            check = self._element_bad(child)
            if check:
                conditions.append(check)
        return _any(conditions)

    def _element_bad(self, child: ChildPlan) -> Optional[str]:
        """Any element of the child's array that Spark would refuse: checked on each element's own JSON."""
        typed = _typed_columns(child.table)
        if not typed:
            return None
        source = child.table.source
        assert source is not None
        raw = f"{_field(RAW, source)}[afl_j + 1]"
        element = f"{_field(TYPED, source)}[afl_j + 1]"
        if not typed[0].path:
            column = typed[0]
            check = leaf_bad(f"json_type({raw})", element, column.type)
            if check is None:
                return None
            condition = check
        else:
            nodes: List[Tuple[Tuple[str, ...], str]] = []
            for column in typed:
                nodes += [(p, "object") for p in _prefixes(column.path)]
                nodes.append((column.path, column.name))
            nodes = list(dict.fromkeys(nodes))
            paths = ", ".join(literal(pointer(p)) for p, _ in nodes)
            tokens = f"json_type({raw}, ['', {paths}])"
            parts = [f"coalesce(NOT {_in(f'afl_u[1]', ('OBJECT', 'NULL'))}, false)"]
            for i, (path, role) in enumerate(nodes):
                token = f"afl_u[{i + 2}]"
                if role == "object":
                    parts.append(f"coalesce(NOT {_in(token, ('OBJECT', 'NULL'))}, false)")
                else:
                    column = next(c for c in typed if c.name == role)
                    check = leaf_bad(token, _field(element, column.path), column.type)
                    if check:
                        parts.append(check)
            condition = f"list_bool_or(list_transform([{tokens}], lambda afl_u: {_any(parts)}))"
        raw_array = _field(RAW, source)
        return (f"coalesce(list_bool_or(list_transform(range(len({raw_array})), lambda afl_j: {condition})), "
                "false)")

    def _cursor_columns(self) -> List[Tuple[str, str]]:
        """(name, expression) of the columns the ranking orders by, greatest first."""
        if self.cursor is None:
            return []
        name = cursor_parent_column(self.tables, self.cursor)
        if name is not None:
            column = next(c for c in self.tables.parent.columns if c.name == name)
            if column.type.kind in ORDERED_KINDS:
                return [("afl_cursor", self._parent_value(column))]
            text = f"CAST({self._parent_value(column)} AS VARCHAR)"
        else:
            text = f"json_extract_string({LINE}, {literal(pointer(self.cursor))})"
        # Numbers compare as numbers, other timestamps as timestamps, anything else as text.
        number = f"TRY_CAST({text} AS DECIMAL(38,9))"
        return [("afl_cursor_num", number),
                ("afl_cursor_ts", f"CASE WHEN {number} IS NULL THEN TRY_CAST({text} AS TIMESTAMPTZ) END"),
                ("afl_cursor_text", text)]

    def _parent_known(self) -> List[str]:
        known = {c.path[0] for c in self.tables.parent.columns if c.path}
        known.update(child.source[0] for child in self.tables.children if child.source)
        return sorted(known)

    def records(self) -> str:
        """One row per line: its part and position, the parent's values (afl_p<i>), the ranking's columns, each
        child's typed array and raw elements, `_extra`, and afl_bad: whether Spark would refuse the record."""
        parent = self.tables.parent
        selected = [PART, POS]
        for i, column in enumerate(parent.columns):
            selected.append(f"{self._parent_value(column)} AS afl_p{i}")
        if parent.keeps_extra:
            selected.append(f"{extra_json(LINE, self._parent_known())} AS {EXTRA}")
        selected += [f"{expression} AS {name}" for name, expression in self._cursor_columns()]
        for child in self.children:
            source = child.table.source
            assert source is not None
            if child.typed:
                selected.append(f"{_field(TYPED, source)} AS {child.typed_array}")
            if child.raw:
                selected.append(f"{_field(RAW, source)} AS {child.raw_array}")
        selected.append(f"{self._bad()} AS {BAD}")
        read = [PART, f"rowid AS {POS}", LINE, f"from_json({LINE}, {self.typed.sql()}) AS {TYPED}"]
        if self.children:
            read.append(f"from_json({LINE}, {self.raw.sql()}) AS {RAW}")
        nodes = ", ".join(literal(pointer(path)) for path, _ in self.token_nodes)
        read.append(f"json_type({LINE}, ['', {nodes}]) AS {TOKENS}" if nodes else f"[json_type({LINE})] AS {TOKENS}")
        return (f"CREATE TABLE {RECORDS} AS SELECT {', '.join(selected)} "
                f"FROM (SELECT {', '.join(read)} FROM {LINES})")

    def null_key(self) -> str:
        indexes = [i for i, c in enumerate(self.tables.parent.columns) if c.name in self.tables.parent.key]
        return _any([f"afl_p{i} IS NULL" for i in indexes])

    def repeated_keys(self) -> str:
        """How many records share their parent key with another one (0: every record wins)."""
        parent = self.tables.parent
        keys = ", ".join(f"afl_p{i}" for i, c in enumerate(parent.columns) if c.name in parent.key)
        return f"SELECT count(*) - count(DISTINCT ({keys})) FROM {RECORDS}"

    def winners(self) -> str:
        """The record that wins each parent key: the greatest cursor (NULL lowest), then the later part, then
        the later line."""
        parent = self.tables.parent
        keys = ", ".join(f"afl_p{i}" for i, c in enumerate(parent.columns) if c.name in parent.key)
        order = [f"{name} DESC NULLS LAST" for name, _ in self._cursor_columns()] + [f"{PART} DESC", f"{POS} DESC"]
        return (f"CREATE TABLE {WINNERS} AS SELECT * EXCLUDE ({BAD}) FROM {RECORDS} "
                f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {', '.join(order)}) = 1")

    def elements(self, child: ChildPlan) -> str:
        """How many elements the winners' arrays of a child hold (its rows before the per-parent dedupe)."""
        array = child.typed_array if child.typed else child.raw_array
        return f"coalesce(sum(len({array})), 0)"

    # the tables' rows -------------------------------------------------------------------------------------

    def table_rows(self, table: Table) -> str:
        if not table.is_child:
            return self._parent_rows()
        return self._child_rows(next(c for c in self.children if c.table is table))

    def _parent_rows(self) -> str:
        parent = self.tables.parent
        columns = [f"CAST(afl_p{i} AS {duck_type(c.type)}) AS {ident(c.name)}" for i, c in enumerate(parent.columns)]
        if parent.keeps_extra:
            columns.append(f"{EXTRA} AS {ident(EXTRA_COLUMN)}")
        return f"SELECT {', '.join(columns)} FROM {WINNERS}"

    def _child_rows(self, child: ChildPlan) -> str:
        table = child.table
        parent = self.tables.parent
        positions = {c.name: i for i, c in enumerate(parent.columns)}
        array = child.typed_array if child.typed else child.raw_array
        carried = [f"afl_p{positions[parent_column]} AS {ident(column)}" for column, parent_column in table.parent_key]
        arrays = [a for a, keep in ((child.typed_array, child.typed), (child.raw_array, child.raw)) if keep]
        exploded = (f"SELECT {', '.join(carried + arrays)}, unnest(range(len({array}))) AS {ELEMENT_INDEX} "
                    f"FROM {WINNERS} WHERE len({array}) > 0")
        element = f"{child.typed_array}[{ELEMENT_INDEX} + 1]"
        raw = f"{child.raw_array}[{ELEMENT_INDEX} + 1]"
        out = [ident(column) for column, _ in table.parent_key]
        if table.index is not None:
            out.append(f"CAST({ELEMENT_INDEX} AS INTEGER) AS {ident(table.index)}")
        for column in table.columns:
            if column.type.kind != "json":
                value = _converted(_field(element, column.path), column.type)
            elif column.path:
                value = f"NULLIF(CAST(json_extract({raw}, {literal(pointer(column.path))}) AS VARCHAR), 'null')"
            else:
                value = f"NULLIF(CAST({raw} AS VARCHAR), 'null')"
            out.append(f"CAST({value} AS {duck_type(column.type)}) AS {ident(column.name)}")
        if table.keeps_extra:
            if table.reads_element or not child.raw:
                out.append(f"CAST(NULL AS VARCHAR) AS {ident(EXTRA_COLUMN)}")
            else:
                known = sorted({c.path[0] for c in table.columns if c.path})
                out.append(f"{extra_json(raw, known)} AS {ident(EXTRA_COLUMN)}")
        names = ", ".join(ident(c.name) for c in self.tables.output_columns(table))
        rows = f"SELECT {', '.join(out)}, {ELEMENT_INDEX} FROM ({exploded})"
        if table.index is not None and table.index in table.key:
            # The element's position is in the key: within one parent no two elements share a key.
            return f"SELECT {names} FROM ({rows})"
        partition = ", ".join(ident(c) for c in dict.fromkeys([c for c, _ in table.parent_key] + list(table.key)))
        return (f"SELECT {names} FROM ({rows}) "
                f"QUALIFY row_number() OVER (PARTITION BY {partition} ORDER BY {ELEMENT_INDEX} DESC) = 1")


def extra_json(document: str, known: Sequence[str]) -> str:
    """A JSON object of the top-level fields of `document` whose names are not in `known`; NULL when there are
    none or `document` is not an object. Each value is its exact JSON text."""
    keys = f"json_keys({document})"
    if known:
        listed = ", ".join(literal(k) for k in known)
        keys = f"list_filter({keys}, lambda afl_k: NOT list_contains([{listed}], afl_k))"
    value = (f"coalesce(CAST(json_extract({document}, '/' || replace(replace(afl_k, '~', '~0'), '/', '~1')) "
             "AS VARCHAR), 'null')")
    entries = f"list_transform({keys}, lambda afl_k: CAST(to_json(afl_k) AS VARCHAR) || ':' || {value})"
    return (f"CASE WHEN len({keys}) > 0 THEN '{{' || array_to_string({entries}, ',') || '}}' END")
