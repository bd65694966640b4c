"""load_warehouse into a real PostgreSQL, one fresh schema per test."""
from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from helpers import DT, NUMBER_LINES_FOR_LOAD, SOURCE, demo_tables, load, order, split, staging_tables

from afluente_spark.errors import StepError

T10 = "2026-11-23T10:00:00.000Z"
T12 = "2026-11-23T12:00:00.000Z"
RESULT_KEY = f"steps/source={SOURCE}/dt={DT}/run={{}}/load_warehouse.result.json"

ITEMS = [{"line": n, "sku": f"S{n}", "quantity": n, "unit_price": n + 0.25} for n in (1, 2, 3)]

TYPED = {
    "things": {
        "key": ["id"],
        "columns": {
            "id": {"path": "id", "type": "bigint"},
            "big": {"path": "big", "type": "bigint"},
            "wide": {"path": "wide", "type": "decimal(38,10)"},
            "money": {"path": "money", "type": "decimal(12,2)"},
            "name": {"path": "name", "type": "string"},
            "small": {"path": "small", "type": "smallint"},
            "ratio": {"path": "ratio", "type": "double"},
            "ok": {"path": "ok", "type": "boolean"},
            "day": {"path": "day", "type": "date"},
            "at": {"path": "at", "type": "timestamp"},
            "doc": {"path": "doc", "type": "json"},
        },
        "unknownFields": "keep",
    },
    "thing_labels": {
        "from": "labels",
        "parentKey": {"thing_id": "id"},
        "index": "position",
        "key": ["thing_id", "position"],
        "columns": {"value": {"path": ".", "type": "string"}},
        "unknownFields": "ignore",
    },
}


def test_a_load_writes_exact_values_unicode_big_numbers_and_json(spark, engine, lake, pg):
    manifest = split(engine, lake, 1, [NUMBER_LINES_FOR_LOAD], tables=TYPED, cursor=None)
    result = load(engine, lake, 1, pg, TYPED)

    assert result == {"version": 1, "stage": "load", "runId": 1, "rows": {"things": 3, "thing_labels": 4},
                      "stale": {"things": 0, "thing_labels": 0}, "alreadyLoaded": False,
                      "schemaChanges": ["create table things", "create table thing_labels"], "keptColumns": {}}
    assert lake.read_json(RESULT_KEY.format(1)) == result
    assert manifest["tables"]["things"]["rows"] == 3
    got = pg.rows("things", "id, big, wide, money, name, small, ratio, ok, day, at, doc, _extra, _afluente_run_id")
    assert got == [
        (1, 9007199254740993, Decimal("1234567890123456789012345678.0123456789"), Decimal("0.01"), "🚀 東京 Ame\u0301lie",
         -32768, 0.1, True, datetime.date(2026, 2, 28), datetime.datetime(2026, 11, 23, 10, 0, 0, 123456),
         {"a": [1, "two", None]}, {"surprise": "😀"}, 1),
        (2, 9223372036854775807, Decimal("-0.0000000001"), Decimal("99999999.99"), "𝔘𝔫𝔦\u05e9\u05dc\u05d5\u05dd",
         32767, -1.5e300, False, datetime.date(1999, 12, 31), datetime.datetime(2026, 11, 22, 23, 0), "a string",
         None, 1),
        (3, None, None, None, None, None, None, None, None, None, None, None, 1),
    ]
    assert pg.rows("thing_labels", "thing_id, position, value", "1, 2") == [
        (1, 0, "ação"), (1, 1, "🙂"), (2, 0, "中文"), (2, 1, "e\u0301")]
    assert pg.rows("_afluente_load_ledger", "run_id, table_name, rows", "2") == [(1, "thing_labels", 4), (1, "things", 3)]
    assert staging_tables(pg) == []


def test_rerunning_a_load_changes_nothing_and_a_ledger_reset_reloads_the_same_rows(spark, engine, lake, pg):
    split(engine, lake, 1, [[order(1, items=ITEMS), order(2)]])
    first = load(engine, lake, 1, pg)
    before = {t: pg.rows(t) for t in ("orders", "order_items", "order_tags")}

    again = load(engine, lake, 1, pg)
    assert again["alreadyLoaded"] is True and again["rows"] == first["rows"] == {
        "orders": 2, "order_items": 5, "order_tags": 4}
    assert {t: pg.rows(t) for t in before} == before  # untouched, even _afluente_loaded_at

    pg.execute(f'DELETE FROM "{pg.schema}"._afluente_load_ledger WHERE run_id = 1')
    reloaded = load(engine, lake, 1, pg)
    assert reloaded["alreadyLoaded"] is False and reloaded["rows"] == first["rows"]
    for table, rows in before.items():
        # The same rows, once each; only the last column, _afluente_loaded_at, is new.
        assert [r[:-1] for r in pg.rows(table)] == [r[:-1] for r in rows]


def test_a_load_failing_halfway_rolls_back_and_its_retry_loads_exact_rows(spark, engine, lake, pg):
    split(engine, lake, 1, [[order(1, items=ITEMS), order(2)]])
    pg.execute(f'CREATE SCHEMA "{pg.schema}"')
    # The child target exists with a constraint a row breaks: its insert fails after the parent's merge ran.
    pg.execute(f'CREATE TABLE "{pg.schema}".order_items (order_id BIGINT, line INTEGER, '
               "sku TEXT CONSTRAINT no_s2 CHECK (sku <> 'S2'), quantity INTEGER, unit_price NUMERIC(12,2), _extra JSONB, "
               '_afluente_run_id BIGINT, _afluente_loaded_at TIMESTAMP)')

    with pytest.raises(StepError, match=r"insert into order_items failed: .*no_s2") as failure:
        load(engine, lake, 1, pg)
    # The warehouse's SQLSTATE says the table is at fault, not the moment: the service does not retry it.
    assert failure.value.permanent
    # The parent table the load created is gone with the rest of its transaction.
    assert pg.conn.execute("SELECT to_regclass(%s)", (f'"{pg.schema}".orders',)).fetchone() == (None,)
    assert pg.count("order_items") == 0
    assert pg.count("_afluente_load_ledger") == 0
    assert staging_tables(pg) == []
    assert not lake.file(RESULT_KEY.format(1)).exists()

    pg.execute(f'DROP TABLE "{pg.schema}".order_items')
    result = load(engine, lake, 1, pg)
    assert result["rows"] == {"orders": 2, "order_items": 5, "order_tags": 4} and not result["alreadyLoaded"]
    assert pg.rows("orders", "id") == [(1,), (2,)]
    assert pg.rows("order_items", "order_id, line, sku, unit_price", "1, 2") == [
        (1, 1, "S1", Decimal("1.25")), (1, 2, "S2", Decimal("2.25")), (1, 3, "S3", Decimal("3.25")),
        (2, 1, "A-1", Decimal("10.25")), (2, 2, "B-2", Decimal("5.00"))]
    assert pg.count("_afluente_load_ledger") == 3


def test_an_updated_record_replaces_its_row_and_its_children(spark, engine, lake, pg):
    split(engine, lake, 1, [[order(1, updated_at=T10, items=ITEMS), order(2, updated_at=T10)]])
    load(engine, lake, 1, pg)
    split(engine, lake, 2, [[order(1, updated_at=T12, status="shipped", items=ITEMS[:2], tags=[])]])
    load(engine, lake, 2, pg)

    assert pg.rows("orders", "id, status, updated_at, _afluente_run_id") == [
        (1, "shipped", datetime.datetime(2026, 11, 23, 12, 0), 2),
        (2, "paid", datetime.datetime(2026, 11, 23, 10, 0), 1)]
    assert pg.rows("order_items", "order_id, line, _afluente_run_id", "1, 2") == [
        (1, 1, 2), (1, 2, 2), (2, 1, 1), (2, 2, 1)]
    assert pg.rows("order_tags", "order_id, position, value", "1, 2") == [(2, 0, "new"), (2, 1, "gift")]
    assert pg.rows("_afluente_load_ledger", "run_id, table_name, rows", "1, 2") == [
        (1, "order_items", 5), (1, "order_tags", 4), (1, "orders", 2),
        (2, "order_items", 2), (2, "order_tags", 0), (2, "orders", 1)]


def test_an_older_load_never_replaces_newer_rows_or_their_children(spark, engine, lake, pg):
    # Run 1 read older versions, but its load commits after run 2's (a retry, a replay, overlapping runs).
    old = split(engine, lake, 1, [[order(1, updated_at=T10, items=ITEMS), order(2, updated_at=T12, status="cancelled",
                                                                               items=[], tags=[]),
                                  order(3, updated_at=T10)]])
    split(engine, lake, 2, [[order(1, updated_at=T12, status="shipped", items=ITEMS[:2], tags=["late"]),
                            order(2, updated_at=T12, status="shipped")]])
    load(engine, lake, 2, pg, cursor_column="updated_at")

    result = load(engine, lake, 1, pg, cursor_column="updated_at")
    # Order 1 is stale with its 3 items and 2 tags; order 2 has an equal cursor, so it replaces; order 3 is new.
    assert result["stale"] == {"orders": 1, "order_items": 3, "order_tags": 2}
    assert result["rows"] == {"orders": 2, "order_items": 2, "order_tags": 2}
    for table, curated in old["tables"].items():
        assert result["rows"][table] + result["stale"][table] == curated["rows"]
    assert pg.rows("orders", "id, status, updated_at, _afluente_run_id") == [
        (1, "shipped", datetime.datetime(2026, 11, 23, 12, 0), 2),
        (2, "cancelled", datetime.datetime(2026, 11, 23, 12, 0), 1),
        (3, "paid", datetime.datetime(2026, 11, 23, 10, 0), 1)]
    assert pg.rows("order_items", "order_id, line, sku, _afluente_run_id", "1, 2") == [
        (1, 1, "S1", 2), (1, 2, "S2", 2), (3, 1, "A-1", 1), (3, 2, "B-2", 1)]
    assert pg.rows("order_tags", "order_id, position, value, _afluente_run_id", "1, 2") == [
        (1, 0, "late", 2), (3, 0, "new", 1), (3, 1, "gift", 1)]
    assert pg.rows("_afluente_load_ledger", "run_id, table_name, rows", "1, 2") == [
        (1, "order_items", 2), (1, "order_tags", 2), (1, "orders", 2),
        (2, "order_items", 4), (2, "order_tags", 3), (2, "orders", 2)]
    assert staging_tables(pg) == []

    # A second run of the load finds it in the ledger, changes nothing, and reports the same counts.
    before = {t: pg.rows(t) for t in ("orders", "order_items", "order_tags")}
    again = load(engine, lake, 1, pg, cursor_column="updated_at")
    assert again == {**result, "alreadyLoaded": True}
    assert {t: pg.rows(t) for t in before} == before


def test_a_null_cursor_on_either_side_lets_the_staged_row_win(spark, engine, lake, pg):
    split(engine, lake, 1, [[order(1, updated_at=None, status="first"), order(2, updated_at=T12, status="first")]])
    load(engine, lake, 1, pg, cursor_column="updated_at")
    split(engine, lake, 2, [[order(1, updated_at=T10, status="second"), order(2, updated_at=None, status="second")]])
    result = load(engine, lake, 2, pg, cursor_column="updated_at")

    assert result["stale"] == {"orders": 0, "order_items": 0, "order_tags": 0}
    assert result["rows"] == {"orders": 2, "order_items": 4, "order_tags": 4}
    assert pg.rows("orders", "id, status, _afluente_run_id") == [(1, "second", 2), (2, "second", 2)]
    assert pg.rows("order_items", "DISTINCT _afluente_run_id") == [(2,)]


def test_without_a_cursor_column_the_last_load_wins(spark, engine, lake, pg):
    split(engine, lake, 1, [[order(1, updated_at=T10, status="old")]])
    split(engine, lake, 2, [[order(1, updated_at=T12, status="new")]])
    load(engine, lake, 2, pg)
    result = load(engine, lake, 1, pg)

    assert result["stale"] == {"orders": 0, "order_items": 0, "order_tags": 0}
    assert result["rows"] == {"orders": 1, "order_items": 2, "order_tags": 2}
    assert pg.rows("orders", "id, status, _afluente_run_id") == [(1, "old", 1)]
    assert pg.rows("order_items", "DISTINCT _afluente_run_id") == [(1,)]


TRICKY = ["", "  padded  ", 'say "hi", then, go', "two\nlines\r\nand more", "back\\slash \\N", "\\.", "NULL", ","]


def test_strings_that_are_hard_for_csv_reach_the_warehouse_exactly(spark, engine, lake, pg):
    # A local load fills staging through COPY … (FORMAT csv): quotes, separators, line breaks, white space, the
    # empty string (not NULL) and COPY's own markers must all come through unchanged.
    records = [{"id": i + 1, "name": text, "labels": [text, None]} for i, text in enumerate(TRICKY)]
    records.append({"id": 100, "name": None, "labels": []})
    split(engine, lake, 1, [records], tables=TYPED, cursor=None)
    load(engine, lake, 1, pg, TYPED)
    assert pg.rows("things", "id, name", "1") == [(i + 1, t) for i, t in enumerate(TRICKY)] + [(100, None)]
    assert pg.rows("thing_labels", "thing_id, position, value", "1, 2") == [
        row for i, t in enumerate(TRICKY) for row in ((i + 1, 0, t), (i + 1, 1, None))]


def test_a_child_key_without_the_parent_key_keeps_one_row_per_key_across_the_run(spark, engine, lake, pg):
    tables = demo_tables()
    tables["order_items"]["key"] = ["sku"]
    shared = [{"line": 1, "sku": "same", "quantity": 1, "unit_price": 1}]
    split(engine, lake, 1, [[order(1, items=shared), order(2, items=shared + ITEMS[:1])]], tables=tables)
    result = load(engine, lake, 1, pg, tables)
    assert result["rows"]["order_items"] == 2
    assert sorted(r[0] for r in pg.rows("order_items", "sku")) == ["S1", "same"]
