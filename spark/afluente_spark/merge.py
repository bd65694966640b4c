"""The load's transaction, for both engines: newer rows kept, the merge, the ledger rows, one commit; and the
staging tables dropped after it.

Plain Python over a connection that either engine provides (afluente_spark/jdbc.py's Warehouse over JDBC,
afluente_embedded/warehouse.py's over psycopg): `execute(sql, label)` returning the rows a statement touched,
`set_autocommit`, `commit`, and a `rollback` that never raises.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

from .errors import StepError
from .spec import ledger_stale
from .sql import WarehouseSql


def prepare(connection: Any, sql: WarehouseSql,
            manifest: Mapping[str, Any]) -> Optional[Tuple[Dict[str, int], Dict[str, int]]]:
    """Creates the schema, the ledger and the targets if missing (in autocommit); when the ledger already holds
    the run, returns its (rows, stale rows) per table: the load is done and changes nothing. Else None."""
    for label, statement in sql.setup():
        connection.execute(statement, label)
    ledger = connection.query(sql.select_ledger(), "read the load ledger")
    if not ledger:
        return None
    rows = {str(name): int(count or 0) for name, count in ledger}
    return rows, ledger_stale(sql.tables, sql.cursor_column, manifest, rows)


def merge_staged(connection: Any, sql: WarehouseSql) -> Tuple[Dict[str, int], Dict[str, int]]:
    """Runs the load's one transaction over the filled staging tables; returns (rows merged, stale rows) per table.
    Any error rolls the whole transaction back and is raised."""
    tables = sql.tables
    rows: Dict[str, int] = {}
    stale = {table.name: 0 for table in tables.all}
    connection.set_autocommit(False)
    try:
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
    return rows, stale


def drop_staging(connection: Any, sql: WarehouseSql) -> None:
    """Best effort, also after a failure: a staging table left behind is dropped by the next attempt anyway."""
    for table in sql.tables.all:
        try:
            connection.execute(sql.drop_staging(table), f"drop staging for {table.name}")
        except StepError:
            pass
