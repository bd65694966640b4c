"""Explains, in plain Python, why one record does not fit the tables' column types.

Only used after Spark's FAILFAST read has failed and the failing line has been found: Spark says what it could
not parse, this says which column and path, in the tables' own words.
"""
from __future__ import annotations

import datetime
import json
import re
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any, Optional, Sequence, Tuple

from .spec import ColumnType, Table, Tables

_MISSING = object()
_DATE = re.compile(r"^\s*([+-]?\d{4,})-(\d{1,2})-(\d{1,2})")
_TIMESTAMP = re.compile(
    r"^\s*([+-]?\d{4,})-(\d{1,2})-(\d{1,2})"
    r"([T ](\d{1,2}):(\d{2})(:(\d{2})(\.\d{1,9})?)?)?\s*(Z|UTC|[+-]\d{2}(:?\d{2})?)?\s*$"
)
_RANGES = {"bigint": 63, "int": 31, "smallint": 15}
_DOUBLE_WORDS = ("NaN", "Infinity", "+Infinity", "-Infinity", "INF", "+INF", "-INF")


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 120 else text[:119] + "…"


def _valid_date(year: str, month: str, day: str) -> bool:
    try:
        datetime.date(int(year), int(month), int(day))
        return True
    except ValueError:
        return False


def fits(value: Any, column_type: ColumnType) -> bool:
    """Whether Spark's JSON reader takes `value` (a json.loads value, floats as Decimal) as `column_type`."""
    if value is None:
        return True
    kind = column_type.kind
    is_number = isinstance(value, (int, Decimal)) and not isinstance(value, bool)
    if kind in _RANGES:
        bits = _RANGES[kind]
        return isinstance(value, int) and not isinstance(value, bool) and -(2 ** bits) <= value < 2 ** bits
    if kind in ("string", "json"):
        return True
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "double":
        return is_number or value in _DOUBLE_WORDS
    if kind == "decimal":
        if isinstance(value, str):
            try:
                value = Decimal(value.strip())
            except InvalidOperation:
                return False
        elif not is_number:
            return False
        number = Decimal(value)
        if not number.is_finite():
            return False
        # Spark rounds to the scale (half up), then refuses more digits than the precision.
        context = Context(prec=200, rounding=ROUND_HALF_UP)
        try:
            rounded = number.quantize(Decimal(1).scaleb(-column_type.scale), context=context)
        except InvalidOperation:
            return False
        return len(rounded.as_tuple().digits) <= column_type.precision
    if kind == "date":
        match = _DATE.match(value) if isinstance(value, str) else None
        return match is not None and _valid_date(*match.groups())
    if kind == "timestamp":
        if is_number:
            return True
        match = _TIMESTAMP.match(value) if isinstance(value, str) else None
        return match is not None and _valid_date(match.group(1), match.group(2), match.group(3))
    return True


def _dig(record: Any, path: Sequence[str]) -> Tuple[Any, Optional[str]]:
    """The value at `path`, or (_MISSING, problem) when an object on the way is something else."""
    current = record
    for depth, segment in enumerate(path):
        if current is None:
            return None, None
        if not isinstance(current, dict):
            where = ".".join(path[:depth]) or "the record"
            return _MISSING, f"{where} is {_show(current)}, not an object"
        current = current.get(segment)
    return current, None


def _check_fields(obj: Any, table: Table, where: str) -> Optional[str]:
    for column in table.columns:
        if column.type.kind == "json" or not column.path:
            continue
        value, problem = _dig(obj, column.path)
        if problem is not None:
            return f"column {table.name}.{column.name} reads {where}{column.dotted}, but {problem}"
        if not fits(value, column.type):
            return f"column {table.name}.{column.name} is {column.type}, but {where}{column.dotted} is {_show(value)}"
    return None


def explain(line: str, tables: Tables) -> Optional[str]:
    """The first reason the record in `line` does not fit, or None when this check finds none."""
    try:
        record = json.loads(line, parse_float=Decimal)
    except ValueError as error:
        return f"the line is not a JSON document ({error})"
    if not isinstance(record, dict):
        return f"the record is {_show(record)}, not an object"
    problem = _check_fields(record, tables.parent, "")
    if problem is not None:
        return problem
    for child in tables.children:
        assert child.source is not None
        source = ".".join(child.source)
        array, problem = _dig(record, child.source)
        if problem is not None:
            return f"table {child.name} reads the array {source}, but {problem}"
        if array is None:
            continue
        if not isinstance(array, list):
            return f"table {child.name} reads {source} as an array, but it is {_show(array)}"
        element_columns = [c for c in child.columns if not c.path and c.type.kind != "json"]
        object_columns = [c for c in child.columns if c.path and c.type.kind != "json"]
        for position, element in enumerate(array):
            where = f"{source}[{position}]"
            if element_columns:
                column = element_columns[0]
                if not fits(element, column.type):
                    return f"column {child.name}.{column.name} is {column.type}, but {where} is {_show(element)}"
            elif object_columns and element is not None and not isinstance(element, dict):
                return f"table {child.name} reads fields of {where}, but it is {_show(element)}, not an object"
            elif object_columns:
                problem = _check_fields(element, child, where + ".")
                if problem is not None:
                    return problem
    return None
