"""Schema evolution in the load, on both engines (the `engine` fixture; the embedded engine is held to Spark's
results, see engines.py): a load whose table spec changed since the warehouse tables were made adds the columns
and tables it lacks and widens types in its own transaction, refuses a narrowing before any row changes, keeps
a column the spec dropped, and a rerun after each change leaves exactly the rows it should."""
from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any, Dict, List

import pytest
from helpers import DT, SOURCE, demo_tables, load, order, split, staging_tables
from helpers import demo_tables_with as tables_with

from afluente_spark.evolve import SchemaChangeError

RESULT_KEY = f"steps/source={SOURCE}/dt={DT}/run={{}}/load_warehouse.result.json"
NOTES = {
    "from": "notes",
    "parentKey": {"order_id": "id"},
    "index": "position",
    "key": ["order_id", "position"],
    "columns": {"value": {"path": ".", "type": "string"}},
    "unknownFields": "keep",
}


def first_load(engine: Any, lake: Any, pg: Any) -> None:
    """Run 1 with the demo tables as they were: orders 1 and 2, two items and two tags each."""
    split(engine, lake, 1, [[order(1), order(2)]])
    result = load(engine, lake, 1, pg)
    assert result["schemaChanges"] == ["create table orders", "create table order_items", "create table order_tags"]


def rerun_keeps_rows(engine: Any, lake: Any, pg: Any, run_id: int, tables: Dict[str, Any],
                     result: Dict[str, Any]) -> None:
    """The same load again finds itself in the ledger and changes nothing; with its ledger rows removed it
    loads the same rows again, once each, with no schema change left to make."""
    names = list(tables)
    before = {t: pg.rows(t) for t in names}
    again = load(engine, lake, run_id, pg, tables)
    assert again["alreadyLoaded"] is True and again["rows"] == result["rows"] and again["schemaChanges"] == []
    assert {t: pg.rows(t) for t in names} == before
    pg.execute(f'DELETE FROM "{pg.schema}"._afluente_load_ledger WHERE run_id = {run_id}')
    reloaded = load(engine, lake, run_id, pg, tables)
    assert reloaded["alreadyLoaded"] is False and reloaded["rows"] == result["rows"]
    assert reloaded["schemaChanges"] == []
    for table, rows in before.items():
        # The same rows, once each; only _afluente_loaded_at is new.
        assert without_loaded_at(pg, table, pg.rows(table)) == without_loaded_at(pg, table, rows)
    assert staging_tables(pg) == []


def columns_of(pg: Any, table: str) -> List[str]:
    return [r[0] for r in pg.conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
        "ORDER BY ordinal_position", (pg.schema, table)).fetchall()]


def without_loaded_at(pg: Any, table: str, rows: List[tuple]) -> List[tuple]:
    """The rows without _afluente_loaded_at (the last column of a table the load created, not of one a column
    was added to), in a stable order."""
    at = columns_of(pg, table).index("_afluente_loaded_at")
    return sorted((r[:at] + r[at + 1:] for r in rows), key=repr)


def test_a_new_column_is_added_and_the_rows_loaded_before_keep_null(spark, engine, lake, pg):
    first_load(engine, lake, pg)
    tables = tables_with(orders__discount={"path": "discount", "type": "decimal(12,2)"})
    split(engine, lake, 2, [[order(2, status="shipped", discount=1.5), order(3, discount=None)]], tables=tables)
    result = load(engine, lake, 2, pg, tables)

    assert result["schemaChanges"] == ["add column orders.discount"] and result["keptColumns"] == {}
    assert result["rows"] == {"orders": 2, "order_items": 4, "order_tags": 4}
    assert pg.rows("orders", "id, status, discount, _afluente_run_id") == [
        (1, "paid", None, 1), (2, "shipped", Decimal("1.50"), 2), (3, "paid", None, 2)]
    assert pg.rows("order_items", "order_id, line, _afluente_run_id", "1, 2") == [
        (1, 1, 1), (1, 2, 1), (2, 1, 2), (2, 2, 2), (3, 1, 2), (3, 2, 2)]
    assert lake.read_json(RESULT_KEY.format(2)) == result
    rerun_keeps_rows(engine, lake, pg, 2, tables, result)


def test_a_new_child_table_is_created_in_the_load(spark, engine, lake, pg):
    first_load(engine, lake, pg)
    tables = demo_tables()
    tables["order_notes"] = copy.deepcopy(NOTES)
    split(engine, lake, 2, [[order(2, notes=["call first", "fragile"]), order(3, notes=[])]], tables=tables)
    result = load(engine, lake, 2, pg, tables)

    assert result["schemaChanges"] == ["create table order_notes"]
    assert result["rows"] == {"orders": 2, "order_items": 4, "order_tags": 4, "order_notes": 2}
    assert pg.rows("order_notes", "order_id, position, value, _afluente_run_id", "1, 2") == [
        (2, 0, "call first", 2), (2, 1, "fragile", 2)]
    assert pg.rows("orders", "id, _afluente_run_id") == [(1, 1), (2, 2), (3, 2)]
    rerun_keeps_rows(engine, lake, pg, 2, tables, result)


def test_a_widened_type_is_applied_and_takes_values_the_old_one_could_not(spark, engine, lake, pg):
    first_load(engine, lake, pg)
    tables = tables_with(order_items__quantity="bigint", orders__total="decimal(16,4)")
    items = [{"line": 1, "sku": "BIG", "quantity": 5_000_000_000, "unit_price": 1}]
    split(engine, lake, 2, [[order(3, total=123456789012.3456, items=items)]], tables=tables)
    result = load(engine, lake, 2, pg, tables)

    assert result["schemaChanges"] == ["widen column orders.total", "widen column order_items.quantity"]
    types = dict(pg.conn.execute(
        "SELECT table_name || '.' || column_name, data_type || coalesce('(' || numeric_precision || ',' || "
        "numeric_scale || ')', '') FROM information_schema.columns WHERE table_schema = %s AND column_name IN "
        "('quantity', 'total')", (pg.schema,)).fetchall())
    assert types == {"order_items.quantity": "bigint(64,0)", "orders.total": "numeric(16,4)"}
    assert pg.rows("orders", "id, total") == [(1, Decimal("25.5000")), (2, Decimal("25.5000")),
                                             (3, Decimal("123456789012.3456"))]
    assert pg.rows("order_items", "order_id, line, quantity", "1, 2") == [
        (1, 1, 2), (1, 2, 1), (2, 1, 2), (2, 2, 1), (3, 1, 5_000_000_000)]
    rerun_keeps_rows(engine, lake, pg, 2, tables, result)


@pytest.mark.parametrize("change, message", [
    ({"orders__customer_id": "int"}, r"column customer_id: the warehouse has bigint, the source config says int"),
    ({"orders__status": "json"}, r"column status: the warehouse has string, the source config says json"),
    ({"order_items__unit_price": "decimal(12,4)"},
     r"column unit_price: the warehouse has decimal\(12,2\), the source config says decimal\(12,4\)"),
])
def test_a_narrowing_is_refused_before_any_row_changes(spark, engine, lake, pg, change, message):
    first_load(engine, lake, pg)
    before = {t: pg.rows(t) for t in ("orders", "order_items", "order_tags", "_afluente_load_ledger")}
    columns = {t: columns_of(pg, t) for t in ("orders", "order_items")}
    # The new column of the same spec is not added either: a refused load changes nothing.
    tables = tables_with(orders__discount={"path": "discount", "type": "double"}, **change)
    split(engine, lake, 2, [[order(2, status="late", discount=2.0), order(3)]], tables=tables)

    with pytest.raises(SchemaChangeError, match=message) as refused:
        load(engine, lake, 2, pg, tables)
    assert refused.value.permanent
    assert "which would change or lose loaded values; keep the type, map the field to a new column" in str(refused.value)
    assert {t: pg.rows(t) for t in before} == before
    assert {t: columns_of(pg, t) for t in columns} == columns
    assert staging_tables(pg) == []
    assert not lake.file(RESULT_KEY.format(2)).exists()

    # With the change taken back, the same run loads, and a rerun leaves the same rows.
    tables = tables_with(orders__discount={"path": "discount", "type": "double"})
    split(engine, lake, 2, [[order(2, status="late", discount=2.0), order(3)]], tables=tables)
    result = load(engine, lake, 2, pg, tables)
    assert result["schemaChanges"] == ["add column orders.discount"]
    assert pg.rows("orders", "id, status, discount") == [(1, "paid", None), (2, "late", 2.0), (3, "paid", None)]
    rerun_keeps_rows(engine, lake, pg, 2, tables, result)


def test_a_column_dropped_from_the_spec_stays_and_is_reported(spark, engine, lake, pg):
    first_load(engine, lake, pg)
    tables = tables_with(orders__customer_city=None)
    split(engine, lake, 2, [[order(2, status="shipped"), order(3)]], tables=tables)
    result = load(engine, lake, 2, pg, tables)

    assert result["schemaChanges"] == [] and result["keptColumns"] == {"orders": ["customer_city"]}
    assert pg.rows("orders", "id, status, customer_city, _afluente_run_id") == [
        (1, "paid", "Porto", 1), (2, "shipped", None, 2), (3, "paid", None, 2)]
    rerun_keeps_rows(engine, lake, pg, 2, tables, result)
