"""split_tables on a real local SparkSession, over validated parts in a tmp file:// lake."""
from __future__ import annotations

import datetime
import json
import os
from decimal import Decimal

import pytest
from helpers import DT, SOURCE, demo_tables, manifest_key, order, rows, split, transform_spec

from afluente_embedded import split_job as embedded_split_job
from afluente_spark import split_job
from afluente_spark.errors import StepError

T10 = "2026-11-23T10:00:00.000Z"
T11 = "2026-11-23T11:00:00.000Z"
T09 = "2026-11-23T09:00:00.000Z"


def items(*lines: int, sku: str = "S"):
    return [{"line": n, "sku": f"{sku}{n}", "quantity": n, "unit_price": n + 0.5} for n in lines]


@pytest.fixture
def demo_run(engine, lake):
    """One ordinary run."""
    return lake, split(engine, lake, 7, [[order(1), order(2)], [order(3, items=items(1, 2, 3))]])


def test_manifest_follows_the_contract_and_lists_exactly_the_written_files(spark, engine, demo_run):
    lake, manifest = demo_run

    assert lake.read_json(manifest_key(7)) == manifest
    assert set(manifest) == {"version", "stage", "runId", "source", "dt", "read", "duplicates", "childDuplicates", "tables"}
    assert (manifest["version"], manifest["stage"], manifest["runId"], manifest["source"], manifest["dt"]) == (
        1, "transform", 7, SOURCE, DT)
    assert (manifest["read"], manifest["duplicates"]) == (3, 0)
    assert manifest["childDuplicates"] == {"order_items": 0, "order_tags": 0}
    assert list(manifest["tables"]) == ["orders", "order_items", "order_tags"]
    expected_rows = {"orders": 3, "order_items": 7, "order_tags": 6}
    for name, table in manifest["tables"].items():
        prefix = f"curated/{name}/dt={DT}/run=7/"
        assert set(table) == {"prefix", "rows", "files"}
        assert table["prefix"] == prefix
        assert table["rows"] == expected_rows[name] == len(rows(spark, lake, manifest, name))
        assert table["files"], name
        on_disk = sorted(n for n in os.listdir(lake.file(prefix)) if not n.startswith("."))
        assert on_disk == sorted(f["key"][len(prefix):] for f in table["files"])  # no _SUCCESS, nothing else
        for f in table["files"]:
            assert set(f) == {"key", "rows", "bytes"}
            assert f["key"].startswith(prefix) and f["key"].endswith(".parquet")
            assert f["bytes"] == lake.file(f["key"]).stat().st_size
        assert sum(f["rows"] for f in table["files"]) == table["rows"]


def test_columns_types_and_nested_paths(spark, engine, demo_run):
    lake, manifest = demo_run
    row = rows(spark, lake, manifest, "orders", ["id"])[0]
    assert row == {
        "id": 1, "status": "paid", "total": Decimal("25.50"), "currency": "EUR",
        "created_at": datetime.datetime(2026, 11, 20, 8, 30),
        "updated_at": datetime.datetime(2026, 11, 23, 10, 0),
        "customer_id": 7, "customer_name": "Ana", "customer_city": "Porto", "customer_country": "PT",
        "_extra": None,
    }
    assert rows(spark, lake, manifest, "order_items", ["order_id", "line"])[:2] == [
        {"order_id": 1, "line": 1, "sku": "A-1", "quantity": 2, "unit_price": Decimal("10.25"), "_extra": None},
        {"order_id": 1, "line": 2, "sku": "B-2", "quantity": 1, "unit_price": Decimal("5.00"), "_extra": None},
    ]
    assert rows(spark, lake, manifest, "order_tags", ["order_id", "position"])[:2] == [
        {"order_id": 1, "position": 0, "value": "new", "_extra": None},
        {"order_id": 1, "position": 1, "value": "gift", "_extra": None},
    ]


def test_empty_null_or_missing_arrays_give_no_child_rows_but_keep_the_parent(spark, engine, lake):
    manifest = split(engine, lake, 1, [[
        order(1, items=[], tags=[]),
        order(2, items=None, tags=None),
        order(3, items="missing", tags="missing"),
        order(4, items=items(1), tags=["only"]),
    ]])
    assert [r["id"] for r in rows(spark, lake, manifest, "orders", ["id"])] == [1, 2, 3, 4]
    assert [(r["order_id"], r["line"]) for r in rows(spark, lake, manifest, "order_items")] == [(4, 1)]
    assert [(r["order_id"], r["value"]) for r in rows(spark, lake, manifest, "order_tags")] == [(4, "only")]
    assert manifest["tables"]["order_items"]["rows"] == 1
    assert manifest["childDuplicates"] == {"order_items": 0, "order_tags": 0}


def test_duplicates_in_a_run_keep_the_latest_cursor_and_its_children(spark, engine, lake):
    first = [
        order(1, updated_at=T10, status="newest", items=items(1, 2, 3)),
        order(2, updated_at=T10, status="tie-earlier"),
    ]
    second = [
        order(1, updated_at=T09, status="older-but-later-in-input", items=items(9)),
        order(2, updated_at=T10, status="tie-later"),
        order(3, status="single"),
        order(2, updated_at=T10, status="tie-latest-line", tags=["t"]),
    ]
    manifest = split(engine, lake, 1, [first, second])

    parents = {r["id"]: r["status"] for r in rows(spark, lake, manifest, "orders")}
    assert parents == {1: "newest", 2: "tie-latest-line", 3: "single"}
    assert (manifest["read"], manifest["duplicates"]) == (6, 3)
    assert manifest["read"] == manifest["tables"]["orders"]["rows"] + manifest["duplicates"]
    # Children come from the winning record only.
    assert sorted(r["line"] for r in rows(spark, lake, manifest, "order_items") if r["order_id"] == 1) == [1, 2, 3]
    assert [r["value"] for r in rows(spark, lake, manifest, "order_tags") if r["order_id"] == 2] == ["t"]


def test_ties_and_no_cursor_follow_input_list_order_not_part_names(spark, engine, lake):
    a = lake.write_part(f"validated/source={SOURCE}/dt={DT}/run=1/part-00000-00000.ndjson.gz",
                        [order(1, status="from-a", updated_at=T11)])
    b = lake.write_part(f"validated/source={SOURCE}/dt={DT}/run=1/part-00000-00001.ndjson.gz",
                        [order(1, status="from-b", updated_at=T09)])
    # b listed first, a last: with no cursor the later input wins even though its name sorts first.
    manifest = engine.run_split(transform_spec(lake, 1, [b, a], 2, cursor=None))
    assert [r["status"] for r in rows(spark, lake, manifest, "orders")] == ["from-a"]
    manifest = engine.run_split(transform_spec(lake, 1, [a, b], 2, cursor=None))
    assert [r["status"] for r in rows(spark, lake, manifest, "orders")] == ["from-b"]


def test_cursor_outside_the_columns_compares_numbers_as_numbers(spark, engine, lake):
    records = [
        order(1, status="v10", meta={"version": 10}),
        order(1, status="v9", meta={"version": 9}),  # later in input, but 9 < 10 (as text "9" > "10")
        order(2, status="ts-new", meta={"version": "2026-11-23T10:00:00Z"}),
        order(2, status="ts-old", meta={"version": "2026-11-22T23:00:00+01:00"}),
    ]
    manifest = split(engine, lake, 1, [records], cursor="meta.version")
    assert {r["id"]: r["status"] for r in rows(spark, lake, manifest, "orders")} == {1: "v10", 2: "ts-new"}
    assert manifest["duplicates"] == 2


def test_child_rows_with_the_same_key_keep_the_last_element(spark, engine, lake):
    elements = [
        {"line": 1, "sku": "first", "quantity": 1, "unit_price": 1},
        {"line": 2, "sku": "other", "quantity": 1, "unit_price": 1},
        {"line": 1, "sku": "last", "quantity": 1, "unit_price": 1},
    ]
    manifest = split(engine, lake, 1, [[order(1, items=elements), order(2, items=elements[:1])]])
    got = sorted((r["order_id"], r["line"], r["sku"]) for r in rows(spark, lake, manifest, "order_items"))
    assert got == [(1, 1, "last"), (1, 2, "other"), (2, 1, "first")]
    assert manifest["childDuplicates"] == {"order_items": 1, "order_tags": 0}


UNICODE = ["🚀 launch ✨", "東京都渋谷区", "Ame\u0301lie", "\u05e9\u05dc\u05d5\u05dd", "tab\tand\nnewline", "𝔘𝔫𝔦"]


def test_unicode_round_trips_to_parquet(spark, engine, lake):
    records = [
        order(i, customer={"id": i, "name": text, "address": {"city": text, "country": "JP"}},
              items=[{"line": 1, "sku": text, "quantity": 1, "unit_price": 1}], tags=[text])
        for i, text in enumerate(UNICODE, start=1)
    ]
    manifest = split(engine, lake, 1, [records])
    assert [r["customer_name"] for r in rows(spark, lake, manifest, "orders", ["id"])] == UNICODE
    assert [r["sku"] for r in rows(spark, lake, manifest, "order_items", ["order_id"])] == UNICODE
    assert [r["value"] for r in rows(spark, lake, manifest, "order_tags", ["order_id"])] == UNICODE


NUMBERS = {
    "nums": {
        "key": ["id"],
        "columns": {
            "id": {"path": "id", "type": "bigint"},
            "big": {"path": "big", "type": "bigint"},
            "wide": {"path": "wide", "type": "decimal(38,10)"},
            "money": {"path": "money", "type": "decimal(12,2)"},
        },
        "unknownFields": "ignore",
    }
}
# Raw JSON text: Python's json would not be the point; these are the bytes a part holds.
NUMBER_LINES = [
    '{"id":1,"big":9007199254740993,"wide":1234567890123456789012345678.0123456789,"money":0.01}',
    '{"id":2,"big":9223372036854775807,"wide":-0.0000000001,"money":99999999.99}',
    '{"id":3,"big":-9223372036854775808,"wide":9999999999999999999999999999.9999999999,"money":-99999999.99}',
]
NUMBER_VALUES = [
    (1, 9007199254740993, Decimal("1234567890123456789012345678.0123456789"), Decimal("0.01")),
    (2, 9223372036854775807, Decimal("-0.0000000001"), Decimal("99999999.99")),
    (3, -9223372036854775808, Decimal("9999999999999999999999999999.9999999999"), Decimal("-99999999.99")),
]


def test_big_integers_and_decimals_survive_exactly(spark, engine, lake):
    manifest = split(engine, lake, 1, [NUMBER_LINES], tables=NUMBERS, cursor=None)
    got = [(r["id"], r["big"], r["wide"], r["money"]) for r in rows(spark, lake, manifest, "nums", ["id"])]
    assert got == NUMBER_VALUES
    assert list(rows(spark, lake, manifest, "nums")[0]) == ["id", "big", "wide", "money"]  # ignore: no _extra


def test_a_wrong_typed_value_fails_with_the_part_line_and_column(spark, engine, lake):
    good = [order(1), order(2)]
    bad = [order(3), order(4), order(5, total="lots")]
    with pytest.raises(StepError) as failure:
        split(engine, lake, 1, [good, bad])
    message = str(failure.value)
    assert message.startswith(f"part validated/source={SOURCE}/dt={DT}/run=1/part-00000-00001.ndjson.gz line 3: ")
    assert 'column orders.total is decimal(12,2), but total is "lots"' in message
    # The same data fails the same way: the service does not retry it.
    assert failure.value.permanent
    assert not lake.file(manifest_key(1)).exists()


def test_a_wrong_typed_child_value_names_the_element(spark, engine, lake):
    elements = [{"line": 1, "sku": "a", "quantity": 1, "unit_price": 1},
                {"line": 2, "sku": "b", "quantity": "two", "unit_price": 1}]
    with pytest.raises(StepError) as failure:
        split(engine, lake, 1, [[order(1, items=elements)]])
    assert 'line 1: column order_items.quantity is int, but items[1].quantity is "two"' in str(failure.value)


def test_a_wrong_record_count_fails_naming_both_numbers(spark, engine, lake):
    inputs = lake.parts(1, [[order(1), order(2)]])
    with pytest.raises(StepError, match=r"^read 2 records from 1 part, but the spec says 3$") as failure:
        engine.run_split(transform_spec(lake, 1, inputs, 3))
    # Not known to be the data's fault: retryable.
    assert not failure.value.permanent
    assert not lake.file(manifest_key(1)).exists()


def test_a_record_without_its_key_fails(spark, engine, lake):
    record = order(1)
    del record["id"]
    with pytest.raises(StepError, match=r"part-00000-00000.ndjson.gz line 2: a record has no value for the key"):
        split(engine, lake, 1, [[order(2), record]])


def test_extra_keeps_unknown_top_level_fields_as_exact_json(spark, engine, lake):
    unknown = {"note": "it's \"quoted\" 😀", "n": 5, "flag": True, "obj": {"a": [1, "2"]}, "nothing": None,
               "numeric_text": "123", "json_text": "{\"x\":1}", "dotted.key": 1, "it's": "q"}
    element = {"line": 1, "sku": "a", "quantity": 1, "unit_price": 1, "discount": {"pct": 10}, "tag": "x"}
    manifest = split(engine, lake, 1, [[order(1, items=[element], **unknown), order(2)]])
    parents = {r["id"]: r["_extra"] for r in rows(spark, lake, manifest, "orders")}
    assert json.loads(parents[1]) == unknown  # customer.email is not here: customer is read
    assert parents[2] is None
    [item] = [r for r in rows(spark, lake, manifest, "order_items") if r["order_id"] == 1]
    assert json.loads(item["_extra"]) == {"discount": {"pct": 10}, "tag": "x"}
    assert all(r["_extra"] is None for r in rows(spark, lake, manifest, "order_tags"))


def test_ignore_and_reject_write_no_extra_column(spark, engine, lake):
    # reject is the validate stage's job; here it is the same as ignore.
    tables = demo_tables(orders="ignore", order_items="reject", order_tags="ignore")
    element = {"line": 1, "sku": "a", "quantity": 1, "unit_price": 1, "surprise": 2}
    manifest = split(engine, lake, 1, [[order(1, surprise=1, items=[element])]], tables=tables)
    for name in ("orders", "order_items", "order_tags"):
        assert "_extra" not in rows(spark, lake, manifest, name)[0]


JSON_TABLES = {
    "events": {
        "key": ["id"],
        "columns": {"id": {"path": "id", "type": "bigint"}, "payload": {"path": "data.payload", "type": "json"}},
        "unknownFields": "ignore",
    },
    "event_parts": {
        "from": "parts",
        "parentKey": {"event_id": "id"},
        "index": "position",
        "key": ["event_id", "position"],
        "columns": {"kind": {"path": "kind", "type": "string"}, "body": {"path": "body", "type": "json"}},
        "unknownFields": "ignore",
    },
    "event_raw": {
        "from": "raw",
        "parentKey": {"event_id": "id"},
        "index": "position",
        "key": ["event_id", "position"],
        "columns": {"value": {"path": ".", "type": "json"}},
        "unknownFields": "ignore",
    },
}


def test_json_columns_hold_exact_json_text(spark, engine, lake):
    values = ["a string", {"x": [1, {"y": None}]}, 12.5, True, [1, "b"], "{\"looks\":\"like json\"}"]
    records = [
        {"id": i, "data": {"payload": v}, "parts": [{"kind": "k", "body": v}], "raw": [v, None]}
        for i, v in enumerate(values)
    ]
    records.append({"id": 99, "data": {"payload": None}, "parts": [{"kind": "none"}], "raw": []})
    manifest = split(engine, lake, 1, [records], tables=JSON_TABLES, cursor=None)
    payloads = {r["id"]: r["payload"] for r in rows(spark, lake, manifest, "events")}
    bodies = {r["event_id"]: r["body"] for r in rows(spark, lake, manifest, "event_parts")}
    raws = {(r["event_id"], r["position"]): r["value"] for r in rows(spark, lake, manifest, "event_raw")}
    for i, v in enumerate(values):
        assert json.loads(payloads[i]) == v
        assert json.loads(bodies[i]) == v
        assert json.loads(raws[(i, 0)]) == v
        assert raws[(i, 1)] is None
    assert payloads[99] is None and bodies[99] is None


def test_a_retry_overwrites_its_own_run_and_nothing_else(spark, engine, lake):
    split(engine, lake, 1, [[order(1), order(2), order(3)]])
    run2 = split(engine, lake, 2, [[order(10)]])
    run2_files = {n: sorted(os.listdir(lake.file(t["prefix"]))) for n, t in run2["tables"].items()}
    foreign = lake.file(f"curated/other_table/dt={DT}/run=1/part-00000.parquet")
    foreign.parent.mkdir(parents=True)
    foreign.write_bytes(b"not ours")

    retry = split(engine, lake, 1, [[order(4)]])

    assert [r["id"] for r in rows(spark, lake, retry, "orders")] == [4]
    for name, table in retry["tables"].items():
        listed = sorted(f["key"].rsplit("/", 1)[1] for f in table["files"])
        assert sorted(n for n in os.listdir(lake.file(table["prefix"])) if not n.startswith(".")) == listed
    assert {n: sorted(os.listdir(lake.file(t["prefix"]))) for n, t in run2["tables"].items()} == run2_files
    assert [r["id"] for r in rows(spark, lake, run2, "orders")] == [10]
    assert foreign.read_bytes() == b"not ours"
    assert lake.read_json(manifest_key(1)) == retry


def test_a_failing_retry_uncommits_the_previous_manifest(spark, engine, lake):
    split(engine, lake, 1, [[order(1)]])
    assert lake.file(manifest_key(1)).exists()
    with pytest.raises(StepError):
        split(engine, lake, 1, [[order(1, total="oops")]])
    assert not lake.file(manifest_key(1)).exists()


def test_large_tables_are_written_in_several_files(spark, engine, lake, monkeypatch):
    monkeypatch.setattr(split_job, "ROWS_PER_FILE", 2)
    monkeypatch.setattr(embedded_split_job, "ROWS_PER_FILE", 2)
    manifest = split(engine, lake, 1, [[order(i, tags=[]) for i in range(1, 6)]])
    files = manifest["tables"]["orders"]["files"]
    assert len(files) == 3
    assert sorted(f["rows"] for f in files) == [1, 2, 2]
    assert manifest["tables"]["order_tags"]["rows"] == 0 and len(manifest["tables"]["order_tags"]["files"]) == 1


def test_a_run_without_records_writes_empty_tables(spark, engine, lake):
    manifest = engine.run_split(transform_spec(lake, 3, [], 0))
    assert manifest["read"] == 0
    for table in manifest["tables"].values():
        assert table["rows"] == 0 and [f["rows"] for f in table["files"]] == [0]


TIMES = {
    "events": {
        "key": ["id"],
        "columns": {"id": {"path": "id", "type": "bigint"}, "at": {"path": "at", "type": "timestamp"},
                    "day": {"path": "day", "type": "date"}},
        "unknownFields": "ignore",
    },
    "event_marks": {
        "from": "marks",
        "parentKey": {"event_id": "id"},
        "index": "position",
        "key": ["event_id", "position"],
        "columns": {"value": {"path": ".", "type": "timestamp"}},
        "unknownFields": "ignore",
    },
}


def test_timestamps_as_iso_text_with_offsets_or_epoch_seconds_and_dates_from_timestamps(spark, engine, lake):
    records = [
        {"id": 1, "at": "2026-11-23T10:00:00.123456Z", "day": "2026-11-23", "marks": [1700000000, "2026-11-23"]},
        {"id": 2, "at": 1700000000, "day": "2026-11-23T23:30:00-03:00", "marks": ["2026-11-23T00:00:00+01:00", None]},
        {"id": 3, "at": "2026-11-23 10:00:00", "day": None, "marks": []},
    ]
    manifest = split(engine, lake, 1, [records], tables=TIMES, cursor=None)
    got = {r["id"]: (r["at"], r["day"]) for r in rows(spark, lake, manifest, "events")}
    assert got == {
        1: (datetime.datetime(2026, 11, 23, 10, 0, 0, 123456), datetime.date(2026, 11, 23)),
        2: (datetime.datetime(2023, 11, 14, 22, 13, 20), datetime.date(2026, 11, 23)),
        3: (datetime.datetime(2026, 11, 23, 10, 0), None),
    }
    marks = {(r["event_id"], r["position"]): r["value"] for r in rows(spark, lake, manifest, "event_marks")}
    assert marks == {(1, 0): datetime.datetime(2023, 11, 14, 22, 13, 20), (1, 1): datetime.datetime(2026, 11, 23),
                     (2, 0): datetime.datetime(2026, 11, 22, 23, 0), (2, 1): None}


@pytest.mark.parametrize("value, shown", [("1700000000", '"1700000000"'), ("not a time", '"not a time"'),
                                          (True, "true"), ({"at": 1}, '{"at": 1}')])
def test_a_timestamp_that_is_neither_iso_text_nor_a_number_fails(spark, engine, lake, value, shown):
    with pytest.raises(StepError) as failure:
        split(engine, lake, 1, [[{"id": 1, "at": value, "marks": []}]], tables=TIMES, cursor=None)
    assert f"line 1: column events.at is timestamp, but at is {shown}" in str(failure.value)


DOUBLES = {"m": {"key": ["id"], "columns": {"id": {"path": "id", "type": "bigint"}, "x": {"path": "x", "type": "double"}},
                 "unknownFields": "ignore"}}


def test_doubles_from_numbers_and_the_words_spark_takes(spark, engine, lake):
    values = [0.1, -1.5e300, 5, 1e-320, "NaN", "Infinity", "-INF", 9007199254740993, None]
    manifest = split(engine, lake, 1, [[{"id": i, "x": v} for i, v in enumerate(values)]], tables=DOUBLES,
                     cursor=None)
    got = {r["id"]: r["x"] for r in rows(spark, lake, manifest, "m")}
    assert [repr(got[i]) for i in range(len(values))] == [
        "0.1", "-1.5e+300", "5.0", "1e-320", "nan", "inf", "-inf", "9007199254740992.0", "None"]


@pytest.mark.parametrize("value, shown", [("1.5", '"1.5"'), ("nan", '"nan"'), (True, "true")])
def test_a_double_in_any_other_string_fails(spark, engine, lake, value, shown):
    with pytest.raises(StepError) as failure:
        split(engine, lake, 1, [[{"id": 1, "x": value}]], tables=DOUBLES, cursor=None)
    assert f"line 1: column m.x is double, but x is {shown}" in str(failure.value)
