"""sql.py: type mapping, names, and the Redshift statements' syntax (sqlglot's redshift dialect). PostgreSQL's
statements run for real in test_load.py; Redshift's cannot run here, so they are parsed."""
from __future__ import annotations

import re

import pytest
import sqlglot
from helpers import demo_tables
from sqlglot import exp

from afluente_spark.spec import ColumnType, read_tables
from afluente_spark.sql import WarehouseSql, column_type, staging_table, staging_type

TYPES = {
    "bigint": ("BIGINT", "BIGINT"),
    "int": ("INTEGER", "INTEGER"),
    "smallint": ("SMALLINT", "SMALLINT"),
    "string": ("TEXT", "VARCHAR(65535)"),
    "boolean": ("BOOLEAN", "BOOLEAN"),
    "double": ("DOUBLE PRECISION", "DOUBLE PRECISION"),
    "date": ("DATE", "DATE"),
    "timestamp": ("TIMESTAMP", "TIMESTAMP"),
    "decimal(12,2)": ("NUMERIC(12,2)", "DECIMAL(12,2)"),
    "decimal(38,10)": ("NUMERIC(38,10)", "DECIMAL(38,10)"),
    "json": ("JSONB", "SUPER"),
}


@pytest.mark.parametrize("name", sorted(TYPES))
def test_column_types_map_to_each_dialect(name):
    t = ColumnType.parse(name)
    assert (column_type(t, "postgres"), column_type(t, "redshift")) == TYPES[name]


def test_json_is_staged_as_text_and_postgres_dates_too():
    assert staging_type(ColumnType("json"), "postgres") == "TEXT"
    assert staging_type(ColumnType("json"), "redshift") == "VARCHAR(65535)"
    assert staging_type(ColumnType("timestamp"), "postgres") == "TEXT"
    assert staging_type(ColumnType("timestamp"), "redshift") == "TIMESTAMP"
    # Staged by COPY (the embedded load on postgres): every column typed, json too.
    assert staging_type(ColumnType("json"), "postgres", typed=True) == "JSONB"
    assert staging_type(ColumnType("timestamp"), "postgres", typed=True) == "TIMESTAMP"
    assert staging_type(ColumnType("json"), "redshift", typed=True) == "VARCHAR(65535)"


def test_staging_names_are_deterministic_short_and_distinct():
    assert staging_table(42, "orders") == "_afl_stg_42_orders"
    long_a, long_b = "a" * 60 + "_one", "a" * 60 + "_two"
    names = {staging_table(9223372036854775807, long_a), staging_table(9223372036854775807, long_b)}
    assert len(names) == 2 and all(len(n) <= 63 for n in names)
    assert staging_table(9223372036854775807, long_a) == staging_table(9223372036854775807, long_a)


# A realistic spec: the demo source, every column type, a json column, nested paths, a composite key.
WIDE = {
    **demo_tables(),
    "order_events": {
        "from": "events",
        "parentKey": {"order_id": "id"},
        "key": ["order_id", "kind", "at"],
        "columns": {
            "kind": {"path": "kind", "type": "string"},
            "at": {"path": "at", "type": "timestamp"},
            "day": {"path": "day", "type": "date"},
            "score": {"path": "score", "type": "double"},
            "flag": {"path": "flag", "type": "boolean"},
            "rank": {"path": "rank", "type": "smallint"},
            "amount": {"path": "amount.value", "type": "decimal(38,10)"},
            "payload": {"path": "payload", "type": "json"},
        },
        "unknownFields": "keep",
    },
}


def redshift_statements(staged_by_copy: bool = False):
    sql = WarehouseSql(read_tables(WIDE), "redshift", "analytics", 1234, "2026-11-23 10:00:00.000000", "updated_at",
                       staged_by_copy)
    statements = list(sql.setup()) + list(sql.create_targets()) + [("select ledger", sql.select_ledger())]
    copies = []
    for table in sql.tables.all:
        statements += sql.staging_statements(table)
        copies.append(sql.copy(table, f"s3://lake-bucket/curated/{table.name}/dt=2026-11-23/run=1234/",
                               "arn:aws:iam::123456789012:role/afluente-copy"))
    statements += [statement for _, statement in sql.drop_stale()]
    for table in sql.tables.all:
        statements += sql.merge(table)
    statements += [(f"ledger {t.name}", sql.insert_ledger(t, 10)) for t in sql.tables.all]
    statements += [(f"drop {t.name}", sql.drop_staging(t)) for t in sql.tables.all]
    return statements, copies


EXPECTED_KINDS = {
    "create schema": exp.Create,
    "create ledger": exp.Create,
    "create table": exp.Create,
    "create staging": exp.Create,
    "select ledger": exp.Select,
    "drop staging": exp.Drop,
    "drop": exp.Drop,
    "delete from": exp.Delete,
    "insert into": exp.Insert,
    "ledger": exp.Insert,
    "stale rows of": exp.Delete,
}


@pytest.mark.parametrize("staged_by_copy", [False, True])
def test_every_redshift_statement_parses_with_sqlglot_redshift(staged_by_copy):
    statements, _ = redshift_statements(staged_by_copy)
    assert len(statements) > 20
    for label, statement in statements:
        [tree] = sqlglot.parse(statement, read="redshift", error_level=sqlglot.ErrorLevel.RAISE)
        # A statement sqlglot does not understand comes back as an opaque Command: that would prove nothing.
        assert not isinstance(tree, exp.Command), (label, statement)
        kind = next(k for prefix, k in sorted(EXPECTED_KINDS.items(), key=lambda i: -len(i[0])) if label.startswith(prefix))
        assert isinstance(tree, kind), (label, statement)
    merges = [s for label, s in statements if label.startswith(("insert into", "delete from"))]
    assert all("JSON_PARSE" in s for s in merges if "order_events" in s and s.startswith("INSERT"))
    assert not any("DISTINCT ON" in s or "TRUNCATE" in s for _, s in statements)
    assert sum(label.startswith("stale rows of") for label, _ in statements) == 4


def test_redshift_types_survive_the_parse():
    statements, _ = redshift_statements()
    create = dict(statements)["create table order_events"]
    tree = sqlglot.parse_one(create, read="redshift")
    types = {c.this.name: c.args["kind"].sql("redshift") for c in tree.find_all(exp.ColumnDef)}
    assert types["payload"] == "SUPER"
    assert types["amount"] == "DECIMAL(38, 10)"
    assert types["kind"] == "VARCHAR(65535)"
    assert types["_afluente_run_id"] == "BIGINT" and types["_afluente_loaded_at"] == "TIMESTAMP"


# sqlglot 30 does parse COPY (exp.Copy), but leniently: it accepts `COPY garbage here` too. So the COPY
# statements are also matched against Redshift's documented grammar for a Parquet COPY with an IAM role.
COPY_GRAMMAR = re.compile(
    r'^COPY "[a-z_][a-z0-9_]*"\."[a-z_][a-z0-9_]*" FROM \'s3://[^\']+/\' '
    r"IAM_ROLE 'arn:aws:iam::\d{12}:role/[\w+=,.@/-]+' FORMAT AS PARQUET$"
)


def test_redshift_copy_statements_match_the_grammar_and_parse_as_copy():
    _, copies = redshift_statements()
    assert len(copies) == 4
    for statement in copies:
        assert COPY_GRAMMAR.match(statement), statement
        tree = sqlglot.parse_one(statement, read="redshift")
        assert isinstance(tree, exp.Copy)
        assert [f.name for f in tree.args["files"]][0].startswith("s3://lake-bucket/curated/")
        assert tree.args["credentials"].args["iam_role"].name.startswith("arn:aws:iam::")
        assert [(p.this.name, p.expression.name) for p in tree.args["params"]] == [("FORMAT", "PARQUET")]


def test_sqlglot_rejects_broken_redshift_sql():
    # The parse test would be worthless if sqlglot accepted anything.
    with pytest.raises(sqlglot.errors.ParseError):
        sqlglot.parse("INSERT INTO t (a) SELECT FROM WHERE", read="redshift", error_level=sqlglot.ErrorLevel.RAISE)


def test_postgres_merge_casts_staged_text_columns():
    sql = WarehouseSql(read_tables(WIDE), "postgres", "s", 5, "2026-11-23 10:00:00.000000")
    insert = dict(sql.merge(sql.tables.get("order_events")))["insert into order_events"]
    assert 'CAST("payload" AS JSONB)' in insert and 'CAST("at" AS TIMESTAMP)' in insert
    delete = dict(sql.merge(sql.tables.get("order_items")))["delete from order_items"]
    assert delete == ('DELETE FROM "s"."order_items" USING "s"."_afl_stg_5_orders" '
                      'WHERE "order_items"."order_id" = "_afl_stg_5_orders"."id"')
    assert sql.create_staging(sql.tables.parent).startswith('CREATE UNLOGGED TABLE "s"."_afl_stg_5_orders" (')


def test_the_stale_rows_statements_drop_children_first_and_compare_typed_cursors():
    sql = WarehouseSql(read_tables(WIDE), "postgres", "s", 5, "2026-11-23 10:00:00.000000", "updated_at")
    statements = sql.drop_stale()
    assert [table for table, _ in statements] == ["order_items", "order_tags", "order_events", "orders"]
    assert dict(statements)["order_items"] == (
        "stale rows of order_items",
        'DELETE FROM "s"."_afl_stg_5_order_items" USING "s"."_afl_stg_5_orders", "s"."orders" '
        'WHERE "_afl_stg_5_order_items"."order_id" = "_afl_stg_5_orders"."id" '
        'AND "orders"."id" = "_afl_stg_5_orders"."id" '
        'AND "orders"."updated_at" > CAST("_afl_stg_5_orders"."updated_at" AS TIMESTAMP)')
    assert dict(statements)["orders"] == (
        "stale rows of orders",
        'DELETE FROM "s"."_afl_stg_5_orders" USING "s"."orders" WHERE "orders"."id" = "_afl_stg_5_orders"."id" '
        'AND "orders"."updated_at" > CAST("_afl_stg_5_orders"."updated_at" AS TIMESTAMP)')
    redshift = WarehouseSql(read_tables(WIDE), "redshift", "s", 5, "2026-11-23 10:00:00.000000", "updated_at")
    assert dict(redshift.drop_stale())["orders"][1].endswith('"orders"."updated_at" > "_afl_stg_5_orders"."updated_at"')
    assert WarehouseSql(read_tables(WIDE), "postgres", "s", 5, "2026-11-23 10:00:00.000000").drop_stale() == []


def test_staging_by_copy_skips_the_dedupe_only_where_the_split_already_made_keys_unique_and_the_casts():
    tables = demo_tables()
    tables["order_items"]["key"] = ["sku"]  # a child key without the parent key: unique per parent only
    read = read_tables(tables)
    exact = WarehouseSql(read, "postgres", "s", 1, "2026-11-23 10:00:00.000000", staged_by_copy=True)
    plain = WarehouseSql(read, "postgres", "s", 1, "2026-11-23 10:00:00.000000")
    inserts = {t.name: exact.merge(t)[1][1] for t in read.all}
    assert [t.name for t in read.all if exact.key_is_unique(t)] == ["orders", "order_tags"]
    assert "ROW_NUMBER" not in inserts["orders"] and "ROW_NUMBER" not in inserts["order_tags"]
    assert "ROW_NUMBER" in inserts["order_items"]
    assert all("ROW_NUMBER" in plain.merge(t)[1][1] for t in read.all)
    # Typed staging: the merge moves values as they are, where text staging casts them.
    assert "AS JSONB" not in inserts["orders"] and 'CAST("created_at" AS TIMESTAMP)' not in inserts["orders"]
    assert 'CAST("created_at" AS TIMESTAMP)' in plain.merge(read.parent)[1][1]
