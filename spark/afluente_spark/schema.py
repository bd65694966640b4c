"""Spark types for the tables' columns, and the explicit schemas split_tables reads a record with.

The record schema holds exactly the fields the tables read: the parent's column paths, each child's `from`
array (of a struct of the child's column paths, or of a scalar when the child reads the element itself).
`json` columns are left out of it: they are taken as exact JSON text from the line (see split.py), because
Spark reading a JSON string value into a StringType drops its quotes.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Tuple, Union

from pyspark.sql import types as T

from .errors import SpecError
from .spec import ColumnType, Table, Tables


def spark_type(column_type: ColumnType) -> T.DataType:
    kind = column_type.kind
    if kind == "decimal":
        return T.DecimalType(column_type.precision, column_type.scale)
    return {
        "bigint": T.LongType(),
        "int": T.IntegerType(),
        "smallint": T.ShortType(),
        "string": T.StringType(),
        "boolean": T.BooleanType(),
        "double": T.DoubleType(),
        "date": T.DateType(),
        "timestamp": T.TimestampType(),
        "json": T.StringType(),
    }[kind]


class _Leaf:
    def __init__(self, data_type: T.DataType, label: str, owner: str) -> None:
        self.data_type = data_type
        self.label = label
        self.owner = owner

    def spark(self) -> T.DataType:
        return self.data_type

    def describe(self) -> str:
        return self.label


class _Struct:
    def __init__(self, owner: str) -> None:
        self.fields: Dict[str, _Node] = {}
        self.owner = owner

    def spark(self) -> T.DataType:
        return T.StructType([T.StructField(name, node.spark(), True) for name, node in self.fields.items()])

    def describe(self) -> str:
        return "an object"


class _Array:
    def __init__(self, element: "_Node", owner: str) -> None:
        self.element = element
        self.owner = owner

    def spark(self) -> T.DataType:
        return T.ArrayType(self.element.spark(), True)

    def describe(self) -> str:
        return "an array"


_Node = Union[_Leaf, _Struct, _Array]


def _merge(existing: _Node, new: _Node, where: str) -> _Node:
    if isinstance(existing, _Struct) and isinstance(new, _Struct):
        for name, node in new.fields.items():
            _put(existing, name, node, f"{where}.{name}" if where else name)
        return existing
    if isinstance(existing, _Array) and isinstance(new, _Array):
        existing.element = _merge(existing.element, new.element, f"{where}[]")
        return existing
    if isinstance(existing, _Leaf) and isinstance(new, _Leaf) and existing.data_type == new.data_type:
        return existing
    raise SpecError(
        f"{new.owner} reads {where or 'the element'} as {new.describe()}, but {existing.owner} reads it as "
        f"{existing.describe()}: a field can be read with one type only"
    )


def _put(struct: _Struct, name: str, node: _Node, where: str) -> None:
    if name in struct.fields:
        struct.fields[name] = _merge(struct.fields[name], node, where)
    else:
        struct.fields[name] = node


def _insert(root: _Struct, path: Tuple[str, ...], node: _Node, owner: str) -> None:
    struct = root
    for depth, segment in enumerate(path[:-1]):
        where = ".".join(path[: depth + 1])
        current = struct.fields.get(segment)
        if current is None:
            current = _Struct(owner)
            struct.fields[segment] = current
        if not isinstance(current, _Struct):
            raise SpecError(
                f"{owner} reads {'.'.join(path)} inside {where}, but {current.owner} reads {where} as {current.describe()}"
            )
        struct = current
    _put(struct, path[-1], node, ".".join(path))


def typed_columns(table: Table) -> List[Tuple[str, Tuple[str, ...], ColumnType]]:
    """The columns read through the typed schema (all but json ones)."""
    return [(c.name, c.path, c.type) for c in table.columns if c.type.kind != "json"]


def element_node(table: Table) -> _Node:
    owner = f"table {table.name}"
    typed = typed_columns(table)
    element = [t for _, path, t in typed if not path]
    if element:
        return _Leaf(spark_type(element[0]), str(element[0]), f"column {table.name}.{table.columns[0].name}")
    fields = [(name, path, t) for name, path, t in typed if path]
    if not fields:
        # Only json columns (or the element read as json): the element is kept as its raw text, any shape.
        return _Leaf(T.StringType(), "raw JSON text", owner)
    struct = _Struct(owner)
    for name, path, column_type in fields:
        _insert(struct, path, _Leaf(spark_type(column_type), str(column_type), f"column {table.name}.{name}"), owner)
    return struct


def record_schema(tables: Tables) -> T.StructType:
    """The typed schema a validated record is read with: no inference, every field it holds is read."""
    root = _Struct("the record")
    for name, path, column_type in typed_columns(tables.parent):
        _insert(root, path, _Leaf(spark_type(column_type), str(column_type), f"column {tables.parent.name}.{name}"), "")
    for child in tables.children:
        assert child.source is not None
        _insert(root, child.source, _Array(element_node(child), f"table {child.name}"), f"table {child.name}")
    spark = root.spark()
    assert isinstance(spark, T.StructType)
    return spark


def raw_arrays_schema(sources: Iterable[Tuple[str, ...]]) -> Optional[T.StructType]:
    """A schema that reads each given array as a list of the elements' raw JSON text (exact for objects)."""
    root = _Struct("the raw element read")
    any_source = False
    for source in sources:
        any_source = True
        _insert(root, source, _Array(_Leaf(T.StringType(), "raw JSON text", "raw"), "raw"), "raw")
    if not any_source:
        return None
    spark = root.spark()
    assert isinstance(spark, T.StructType)
    return spark


def output_schema(tables: Tables, table: Table) -> T.StructType:
    return T.StructType([T.StructField(c.name, spark_type(c.type), True) for c in tables.output_columns(table)])
