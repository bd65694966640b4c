"""spec.py and schema.py: reading a TableSpec into columns and the explicit read schema (no SparkSession)."""
from __future__ import annotations

import copy

import pytest
from helpers import DEMO_TABLES, demo_tables

from afluente_spark.diagnose import explain, fits
from afluente_spark.errors import SpecError
from afluente_spark.schema import record_schema
from afluente_spark.spec import ColumnType, read_cursor_column, read_tables


def test_output_columns_put_parent_key_and_index_first_and_extra_last():
    tables = read_tables(DEMO_TABLES)
    names = {t.name: [(c.name, str(c.type)) for c in tables.output_columns(t)] for t in tables.all}
    assert names["orders"][0] == ("id", "bigint") and names["orders"][-1] == ("_extra", "json")
    assert names["order_items"] == [("order_id", "bigint"), ("line", "int"), ("sku", "string"), ("quantity", "int"),
                                    ("unit_price", "decimal(12,2)"), ("_extra", "json")]
    assert names["order_tags"] == [("order_id", "bigint"), ("position", "int"), ("value", "string"), ("_extra", "json")]
    ignored = read_tables(demo_tables(order_tags="ignore"))
    assert [c.name for c in ignored.output_columns(ignored.get("order_tags"))] == ["order_id", "position", "value"]


def test_the_record_schema_reads_exactly_the_needed_fields():
    schema = record_schema(read_tables(DEMO_TABLES))
    assert schema.simpleString() == (
        "struct<id:bigint,status:string,total:decimal(12,2),currency:string,created_at:timestamp,"
        "updated_at:timestamp,customer:struct<id:bigint,name:string,address:struct<city:string,country:string>>,"
        "items:array<struct<line:int,sku:string,quantity:int,unit_price:decimal(12,2)>>,tags:array<string>>"
    )


def test_a_field_read_with_two_types_is_refused():
    tables = copy.deepcopy(DEMO_TABLES)
    tables["orders"]["columns"]["total_text"] = {"path": "total", "type": "string"}
    with pytest.raises(SpecError, match=r"column orders.total_text reads total as string, but column orders.total reads it as decimal\(12,2\)"):
        record_schema(read_tables(tables))


def test_an_element_column_must_be_alone():
    tables = copy.deepcopy(DEMO_TABLES)
    tables["order_tags"]["columns"]["other"] = {"path": "x", "type": "string"}
    with pytest.raises(SpecError, match="must be the only column"):
        read_tables(tables)


@pytest.mark.parametrize("change,message", [
    (lambda t: t["orders"].update({"from": "x", "parentKey": {"a": "id"}}), "exactly one table without"),
    (lambda t: t["order_items"]["parentKey"].update({"order_id": "status"}), "not a key column of orders"),
    (lambda t: t["orders"]["columns"]["id"].update({"type": "decimal(40,2)"}), "decimal"),
    (lambda t: t["orders"]["columns"]["id"].pop("path"), r"\{path, type\}"),
])
def test_malformed_tables_fail_with_a_message(change, message):
    tables = copy.deepcopy(DEMO_TABLES)
    change(tables)
    with pytest.raises(SpecError, match=message):
        read_tables(tables)


def test_a_load_specs_cursor_column_is_an_ordered_parent_column_or_null():
    tables = read_tables(DEMO_TABLES)
    assert read_cursor_column({"cursorColumn": "updated_at"}, tables, "the load spec") == "updated_at"
    assert read_cursor_column({"cursorColumn": None}, tables, "the load spec") is None
    assert read_cursor_column({}, tables, "the load spec") is None  # a spec from before the field existed
    with pytest.raises(SpecError, match=r"the load spec: 'cursorColumn' must be a column name or null"):
        read_cursor_column({"cursorColumn": 3}, tables, "the load spec")
    with pytest.raises(SpecError, match=r"'cursorColumn' 'line' is not a column of table orders"):
        read_cursor_column({"cursorColumn": "line"}, tables, "the load spec")
    # Text orders differently in Spark and in the warehouse, so it cannot decide which version is newer.
    with pytest.raises(SpecError, match=r"'cursorColumn' 'status' is string, not one of bigint, "):
        read_cursor_column({"cursorColumn": "status"}, tables, "the load spec")


def test_fits_follows_sparks_json_reader():
    assert fits(9223372036854775807, ColumnType("bigint")) and not fits(9223372036854775808, ColumnType("bigint"))
    assert not fits(True, ColumnType("int")) and not fits("1", ColumnType("int"))
    assert fits("12.50", ColumnType.parse("decimal(12,2)")) and not fits("lots", ColumnType.parse("decimal(12,2)"))
    assert not fits(12345678901, ColumnType.parse("decimal(12,2)"))
    assert fits("2026-11-23T10:00:00.123Z", ColumnType("timestamp")) and not fits("soon", ColumnType("timestamp"))
    assert not fits("2026-13-01", ColumnType("date"))


def test_explain_names_column_and_path():
    tables = read_tables(DEMO_TABLES)
    assert explain('{"id":1,"customer":{"address":"Porto"}}', tables) == (
        'column orders.customer_city reads customer.address.city, but customer.address is "Porto", not an object')
    assert explain('{"id":1,"tags":[1,"a",{"b":1}]}', tables) is None  # numbers read as strings are fine
    assert explain('{"id":1,"items":{"line":1}}', tables) == (
        'table order_items reads items as an array, but it is {"line": 1}')
