"""The schema evolution planner (afluente_spark/evolve.py): what it plans for each change of a table spec, and that
its statements, run on the real PostgreSQL, bring the warehouse to the spec without touching loaded rows."""
from __future__ import annotations

import copy
from typing import Any, Dict

import pytest
import sqlglot
from sqlglot import exp

from afluente_spark.evolve import SchemaChangeError, columns_query, plan, read_columns
from afluente_spark.spec import read_tables
from afluente_spark.sql import WarehouseSql

from helpers import DEMO_TABLES, demo_tables_with as changed


def warehouse_sql(tables: Dict[str, Any], schema: str, dialect: str = "postgres") -> WarehouseSql:
    return WarehouseSql(read_tables(tables), dialect, schema, 1, "2026-11-23 10:00:00.000000")


def create(pg: Any, tables: Dict[str, Any]) -> None:
    sql = warehouse_sql(tables, pg.schema)
    for _, statement in sql.setup() + sql.create_targets():
        pg.conn.execute(statement)


def existing(pg: Any) -> Dict[str, Any]:
    return read_columns(pg.conn.execute(columns_query(pg.schema)).fetchall())


def apply(pg: Any, tables: Dict[str, Any]):
    evolution = plan(warehouse_sql(tables, pg.schema), existing(pg))
    with pg.conn.transaction():
        for _, statement in evolution.statements:
            pg.conn.execute(statement)
    return evolution


def test_an_unchanged_spec_plans_nothing(pg):
    create(pg, DEMO_TABLES)
    evolution = plan(warehouse_sql(DEMO_TABLES, pg.schema), existing(pg))
    assert (evolution.statements, evolution.dropped) == ([], {})


def test_adds_a_column_and_a_child_table_keeping_the_loaded_rows(pg):
    create(pg, DEMO_TABLES)
    pg.conn.execute(f'INSERT INTO "{pg.schema}".orders (id, status) VALUES (1, \'paid\')')
    tables = changed(orders__discount={"path": "discount", "type": "decimal(12,2)"})
    tables["order_notes"] = {
        "from": "notes",
        "parentKey": {"order_id": "id"},
        "index": "position",
        "key": ["order_id", "position"],
        "columns": {"value": {"path": ".", "type": "string"}},
    }
    evolution = apply(pg, tables)
    assert [label for label, _ in evolution.statements] == ["add column orders.discount", "create table order_notes"]
    columns = existing(pg)
    assert columns["orders"]["discount"].spec_type().__str__() == "decimal(12,2)"
    assert set(columns["order_notes"]) >= {"order_id", "position", "value"}
    assert pg.conn.execute(f'SELECT id, status, discount FROM "{pg.schema}".orders').fetchall() == [(1, "paid", None)]
    # Applied, the spec plans nothing more.
    assert plan(warehouse_sql(tables, pg.schema), existing(pg)).statements == []


def test_widens_integers_and_decimals_on_postgres(pg):
    create(pg, DEMO_TABLES)
    pg.conn.execute(f'INSERT INTO "{pg.schema}".order_items (order_id, line, unit_price) VALUES (1, 7, 12.34)')
    evolution = apply(pg, changed(order_items__line="bigint", order_items__unit_price="decimal(16,4)"))
    assert [label for label, _ in evolution.statements] == [
        "widen column order_items.line",
        "widen column order_items.unit_price",
    ]
    columns = existing(pg)["order_items"]
    assert (str(columns["line"].spec_type()), str(columns["unit_price"].spec_type())) == ("bigint", "decimal(16,4)")
    assert pg.conn.execute(f'SELECT line, unit_price::text FROM "{pg.schema}".order_items').fetchall() == [
        (7, "12.3400")
    ]


@pytest.mark.parametrize("column,new,old", [
    ("status", "bigint", "string"),  # a string into an integer
    ("id", "int", "bigint"),  # an integer narrowed
    ("total", "decimal(10,2)", "decimal(12,2)"),  # fewer digits
    ("total", "decimal(12,4)", "decimal(12,2)"),  # more scale, fewer integer digits
])
def test_refuses_a_narrowing_or_incompatible_change_naming_it_before_any_change(pg, column, new, old):
    create(pg, DEMO_TABLES)
    tables = changed(**{f"orders__{column}": new}, orders__discount={"path": "discount", "type": "int"})
    with pytest.raises(SchemaChangeError) as error:
        plan(warehouse_sql(tables, pg.schema), existing(pg))
    assert error.value.permanent
    assert str(error.value).startswith(
        f"table {pg.schema}.orders, column {column}: the warehouse has {old}, the source config says {new}, "
        "which would change or lose loaded values; keep the type"
    )
    # Nothing was planned, so nothing ran: the new column of the same spec is not there either.
    assert "discount" not in existing(pg)["orders"]


def test_a_column_dropped_from_the_spec_stays_and_is_reported(pg):
    create(pg, DEMO_TABLES)
    evolution = apply(pg, changed(orders__customer_city=None))
    assert evolution.statements == []
    assert evolution.dropped == {"orders": ["customer_city"]}
    assert "customer_city" in existing(pg)["orders"]


def test_redshift_widens_no_type_in_place_and_says_what_to_do(pg):
    create(pg, DEMO_TABLES)
    tables = changed(order_items__line="bigint")
    with pytest.raises(SchemaChangeError, match=r"column line: the warehouse has int, the source config says bigint; "
                                                r"Redshift cannot change this type in place"):
        plan(warehouse_sql(tables, pg.schema, "redshift"), existing(pg))
    # A new column is planned with Redshift's types.
    evolution = plan(warehouse_sql(changed(orders__note={"path": "note", "type": "string"}), pg.schema, "redshift"),
                     existing(pg))
    assert evolution.statements == [(
        "add column orders.note",
        f'ALTER TABLE "{pg.schema}"."orders" ADD COLUMN "note" VARCHAR(65535)',
    )]


def test_redshift_evolution_statements_parse_with_sqlglot_redshift(pg):
    # Redshift cannot run here: its statements are parsed (as test_sql.py does for the load's).
    create(pg, DEMO_TABLES)
    tables = changed(orders__note={"path": "note", "type": "string"}, orders__discount={"path": "d", "type": "json"})
    tables["order_notes"] = copy.deepcopy(DEMO_TABLES["order_tags"]) | {"from": "notes"}
    evolution = plan(warehouse_sql(tables, pg.schema, "redshift"), existing(pg))
    assert [label for label, _ in evolution.statements] == [
        "add column orders.note",
        "add column orders.discount",
        "create table order_notes",
    ]
    for label, statement in evolution.statements:
        [tree] = sqlglot.parse(statement, read="redshift", error_level=sqlglot.ErrorLevel.RAISE)
        assert not isinstance(tree, exp.Command), (label, statement)
        assert isinstance(tree, exp.Alter if label.startswith("add") else exp.Create), (label, statement)
