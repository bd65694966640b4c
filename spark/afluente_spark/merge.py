"""The load's transaction, for both engines: the warehouse evolved to the spec (afluente_spark/evolve.py), newer
rows kept, the merge, the ledger rows, one commit; and the staging tables dropped after it.

Plain Python over a connection that either engine provides (afluente_spark/jdbc.py's Warehouse over JDBC,
afluente_embedded/warehouse.py's over psycopg): `execute(sql, label)` returning the rows a statement touched,
`set_autocommit`, `commit`, and a `rollback` that never raises.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from .errors import StepError
from .evolve import Evolution, columns_query, plan, read_columns
from .spec import ledger_stale
from .sql import WarehouseSql


@dataclass
class Merged:
    """What a load did, for its LoadResult: rows merged and stale rows per table, and how the warehouse changed."""

    rows: Dict[str, int]
    stale: Dict[str, int]
    #: The evolution statements' labels ("add column orders.discount"), in the order they ran.
    schema_changes: List[str] = field(default_factory=list)
    #: Per table, the warehouse columns the spec no longer has: kept, NULL in the rows this load wrote.
    kept_columns: Dict[str, List[str]] = field(default_factory=dict)

    def result_fields(self) -> Dict[str, Any]:
        return {"rows": self.rows, "stale": self.stale, "schemaChanges": self.schema_changes,
                "keptColumns": self.kept_columns}


def evolution(connection: Any, sql: WarehouseSql) -> Evolution:
    """The warehouse's columns now, and what the spec changes of them. Raises SchemaChangeError for a change the
    load will not make."""
    return plan(sql, read_columns(connection.query(columns_query(sql.schema), "read the warehouse's columns")))


def prepare(connection: Any, sql: WarehouseSql, manifest: Mapping[str, Any]) -> Optional[Merged]:
    """Creates the schema and the ledger if missing (in autocommit). When the ledger already holds the run, returns
    its rows and stale rows per table: the load is done and changes nothing. Else None, once the spec's changes
    to the warehouse are known to be ones the load makes: a refused change fails here, before anything is staged."""
    for label, statement in sql.setup():
        connection.execute(statement, label)
    ledger = connection.query(sql.select_ledger(), "read the load ledger")
    if not ledger:
        evolution(connection, sql)
        return None
    rows = {str(name): int(count or 0) for name, count in ledger}
    return Merged(rows, ledger_stale(sql.tables, sql.cursor_column, manifest, rows))


def merge_staged(connection: Any, sql: WarehouseSql) -> Merged:
    """Runs the load's one transaction over the filled staging tables: the warehouse evolved to the spec (planned
    again here, as another load may have changed it since prepare), then the merge and the ledger. Any error
    rolls the whole transaction back, the schema changes with it, and is raised."""
    tables = sql.tables
    rows: Dict[str, int] = {}
    stale = {table.name: 0 for table in tables.all}
    connection.set_autocommit(False)
    try:
        changes = evolution(connection, sql)
        for label, statement in changes.statements:
            connection.execute(statement, label)
        for name, (label, statement) in sql.drop_stale():
            stale[name] = connection.execute(statement, label)
        for table in tables.all:
            for label, statement in sql.merge(table):
                count = connection.execute(statement, label)
                if label.startswith("insert"):
                    rows[table.name] = count
        for table in tables.all:
            connection.execute(sql.insert_ledger(table, rows[table.name]), f"ledger row for {table.name}")
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    finally:
        try:
            connection.set_autocommit(True)
        except Exception:  # noqa: BLE001 - a connection that broke mid-transaction is closed by the caller
            pass
    return Merged(rows, stale, [label for label, _ in changes.statements], changes.dropped)


def drop_staging(connection: Any, sql: WarehouseSql) -> None:
    """Best effort, also after a failure: a staging table left behind is dropped by the next attempt anyway."""
    for table in sql.tables.all:
        try:
            connection.execute(sql.drop_staging(table), f"drop staging for {table.name}")
        except StepError:
            pass
