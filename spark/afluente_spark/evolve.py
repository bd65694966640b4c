"""Schema evolution of the warehouse: compares the tables a load's spec declares with the
columns the warehouse has, and plans the statements that bring the warehouse to the spec, or refuses the change.

Plain Python, for both engines: afluente_spark/merge.py plans before the load stages anything (a refused change
fails the step before any work) and again inside the load's transaction, where the statements run before the
merge. What it decides:
- a table the warehouse lacks is created (a new child table);
- a column the warehouse lacks is added (`ALTER TABLE … ADD COLUMN`), nullable, so rows loaded before keep NULL;
- a type the spec widens is widened where the dialect can do it in place: on PostgreSQL smallint → int → bigint
  and a decimal with as many or more digits on each side of the point; a string is already unbounded (TEXT, and
  Redshift's VARCHAR(65535)). Redshift changes no type in place but VARCHAR's length, so there a widening is
  refused like a narrowing, with what to do instead;
- a narrowing or incompatible change (string → int, decimal(12,2) → decimal(10,2)) is refused before any row
  changes, naming the table, the column, both types and what the operator can do;
- a column the spec no longer has stays in the warehouse (its later rows are NULL) and is reported.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

from .errors import StepError
from .spec import ColumnType, Tables
from .sql import LOADED_AT_COLUMN, RUN_ID_COLUMN, Statement, WarehouseSql, column_type, ident

#: Integer kinds by width: a kind may become any wider one.
_INTEGER_WIDTH = {"smallint": 2, "int": 4, "bigint": 8}

#: information_schema.columns.data_type → the spec's kind, for both dialects.
_KIND_OF_DATA_TYPE = {
    "smallint": "smallint",
    "integer": "int",
    "bigint": "bigint",
    "boolean": "boolean",
    "double precision": "double",
    "date": "date",
    "timestamp without time zone": "timestamp",
    "text": "string",
    "character varying": "string",
    "jsonb": "json",
    "super": "json",
}


class SchemaChangeError(StepError):
    """The spec changes a warehouse column in a way the load will not apply: the same load fails the same way."""

    permanent = True


@dataclass(frozen=True)
class WarehouseColumn:
    """A column as information_schema describes it."""

    data_type: str
    numeric_precision: Optional[int] = None
    numeric_scale: Optional[int] = None

    def spec_type(self) -> Optional[ColumnType]:
        """The spec type this column holds, or None for a type afluente never creates."""
        if self.data_type == "numeric":
            return ColumnType("decimal", int(self.numeric_precision or 0), int(self.numeric_scale or 0))
        kind = _KIND_OF_DATA_TYPE.get(self.data_type)
        return ColumnType(kind) if kind else None


@dataclass
class Evolution:
    """What a load does to the warehouse before its merge, and what it only reports."""

    statements: List[Statement] = field(default_factory=list)
    #: Per table, the warehouse columns the spec no longer has: kept, NULL in later rows.
    dropped: Dict[str, List[str]] = field(default_factory=dict)


def _widens(old: ColumnType, new: ColumnType) -> bool:
    if old.kind in _INTEGER_WIDTH and new.kind in _INTEGER_WIDTH:
        return _INTEGER_WIDTH[new.kind] > _INTEGER_WIDTH[old.kind]
    if old.kind == "decimal" and new.kind == "decimal":
        return new.scale >= old.scale and new.precision - new.scale >= old.precision - old.scale
    return False


def plan(sql: WarehouseSql, existing: Mapping[str, Mapping[str, WarehouseColumn]]) -> Evolution:
    """The evolution for `sql`'s tables, given the warehouse's columns per table of its schema (`existing`,
    lower-cased names as the warehouse folds them). Raises SchemaChangeError naming every refused change."""
    evolution = Evolution()
    refused: List[str] = []
    tables: Tables = sql.tables
    for table in tables.all:
        have = existing.get(table.name)
        if have is None:
            evolution.statements.append((f"create table {table.name}", sql.create_target(table)))
            continue
        wanted = sql.columns(table)
        for column in wanted:
            current = have.get(column.name.lower())
            if current is None:
                # IF NOT EXISTS (PostgreSQL): a concurrent load of the same source may add the column first; its
                # ALTER holds the table's lock until it commits, and then this one is a no-op. Redshift has no
                # such clause, but runs its transactions serializably: the later one fails and is retried.
                guard = "IF NOT EXISTS " if sql.dialect == "postgres" else ""
                evolution.statements.append((
                    f"add column {table.name}.{column.name}",
                    f"ALTER TABLE {sql.target(table)} ADD COLUMN {guard}{ident(column.name)} "
                    f"{column_type(column.type, sql.dialect)}",
                ))
                continue
            old = current.spec_type()
            new = column.type
            if old == new or (old is not None and old.kind == "string" and new.kind == "string"):
                continue
            if old is not None and _widens(old, new) and sql.dialect == "postgres":
                evolution.statements.append((
                    f"widen column {table.name}.{column.name}",
                    f"ALTER TABLE {sql.target(table)} ALTER COLUMN {ident(column.name)} "
                    f"TYPE {column_type(new, sql.dialect)}",
                ))
                continue
            refused.append(_refusal(sql, table.name, column.name, current, old, new))
        declared = {c.name.lower() for c in wanted} | {RUN_ID_COLUMN, LOADED_AT_COLUMN}
        gone = sorted(name for name in have if name not in declared)
        if gone:
            evolution.dropped[table.name] = gone
    if refused:
        raise SchemaChangeError("; ".join(refused))
    return evolution


def _refusal(sql: WarehouseSql, table: str, column: str, current: WarehouseColumn,
             old: Optional[ColumnType], new: ColumnType) -> str:
    was = str(old) if old is not None else current.data_type
    where = f"table {sql.schema}.{table}, column {column}: the warehouse has {was}, the source config says {new}"
    if old is not None and _widens(old, new):
        return (f"{where}; Redshift cannot change this type in place: add a column with the new type and "
                f"name it in the config, or rebuild the table (CREATE TABLE AS, then rename), then replay the run "
                f"from its transform stage")
    return (f"{where}, which would change or lose loaded values; keep the type, map the field to a new column, "
            f"or convert the column yourself (ALTER TABLE … TYPE … USING …), then replay the run from its "
            f"transform stage (a retry reloads the tables it already split with this type)")


def read_columns(rows: List[Tuple[object, ...]]) -> Dict[str, Dict[str, WarehouseColumn]]:
    """The `existing` argument of plan(), from the rows of columns_query()."""
    out: Dict[str, Dict[str, WarehouseColumn]] = {}
    for table, column, data_type, precision, scale in rows:
        out.setdefault(str(table), {})[str(column)] = WarehouseColumn(
            str(data_type),
            int(precision) if precision is not None else None,  # type: ignore[call-overload]
            int(scale) if scale is not None else None,  # type: ignore[call-overload]
        )
    return out


def columns_query(schema: str) -> str:
    """The warehouse's columns of every table in `schema`: (table, column, data type, precision, scale)."""
    quoted = schema.replace("'", "''")
    return (
        "SELECT table_name, column_name, data_type, numeric_precision, numeric_scale "
        f"FROM information_schema.columns WHERE table_schema = '{quoted}' ORDER BY table_name, ordinal_position"
    )
