"""Every SQL statement load_warehouse runs, for both warehouse dialects (postgres, redshift).

Plain Python (no Spark), so the statements can be checked on their own: PostgreSQL runs them for real in the
tests, and the Redshift ones are parsed with sqlglot's redshift dialect. Identifiers are always quoted.
"""
from __future__ import annotations

import hashlib
from typing import List, Optional, Sequence, Tuple

from .errors import SpecError
from .spec import ColumnType, OutputColumn, Table, Tables

DIALECTS = ("postgres", "redshift")
LEDGER = "_afluente_load_ledger"
RUN_ID_COLUMN = "_afluente_run_id"
LOADED_AT_COLUMN = "_afluente_loaded_at"
ROW_NUMBER = "_afluente_rn"
DEDUPED = "_afluente_d"
STAGING_PREFIX = "_afl_stg_"
MAX_IDENTIFIER = 63
REDSHIFT_MAX_VARCHAR = "VARCHAR(65535)"

Statement = Tuple[str, str]  # (label, sql): the label names the statement in an error


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, name: str) -> str:
    return f"{ident(schema)}.{ident(name)}"


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _check_dialect(dialect: str) -> None:
    if dialect not in DIALECTS:
        raise SpecError(f"warehouse dialect {dialect!r} is not one of {', '.join(DIALECTS)}")


def column_type(t: ColumnType, dialect: str) -> str:
    """The warehouse type of a column."""
    _check_dialect(dialect)
    kind = t.kind
    if kind == "decimal":
        return f"{'NUMERIC' if dialect == 'postgres' else 'DECIMAL'}({t.precision},{t.scale})"
    if kind == "string":
        return "TEXT" if dialect == "postgres" else REDSHIFT_MAX_VARCHAR
    if kind == "json":
        return "JSONB" if dialect == "postgres" else "SUPER"
    return {
        "bigint": "BIGINT",
        "int": "INTEGER",
        "smallint": "SMALLINT",
        "boolean": "BOOLEAN",
        "double": "DOUBLE PRECISION",
        "date": "DATE",
        "timestamp": "TIMESTAMP",
    }[kind]


def staging_type(t: ColumnType, dialect: str, typed: bool = False) -> str:
    """The type a column has in a staging table. json is staged as text and parsed in the merge. On postgres,
    dates and timestamps are staged as text too (Spark writes them in UTC) so the JVM's time zone, which the
    JDBC driver applies to java.sql.Timestamp values, cannot shift them. `typed` (postgres staged by COPY, where
    no JVM is in the way): every column has its target type, and COPY parses the values."""
    if typed and dialect == "postgres":
        return column_type(t, dialect)
    if t.kind == "json":
        return "TEXT" if dialect == "postgres" else REDSHIFT_MAX_VARCHAR
    if dialect == "postgres" and t.kind in ("date", "timestamp"):
        return "TEXT"
    return column_type(t, dialect)


def staged_value(expression: str, t: ColumnType, dialect: str, typed: bool = False) -> str:
    """A staging column as its target type."""
    if typed and dialect == "postgres":
        return expression
    if t.kind == "json":
        return f"CAST({expression} AS JSONB)" if dialect == "postgres" else f"JSON_PARSE({expression})"
    if dialect == "postgres" and t.kind in ("date", "timestamp"):
        return f"CAST({expression} AS {column_type(t, dialect)})"
    return expression


def staging_table(run_id: int, table: str) -> str:
    """A deterministic staging table name for a run and table, at most 63 characters."""
    name = f"{STAGING_PREFIX}{run_id}_{table}"
    if len(name) <= MAX_IDENTIFIER:
        return name
    digest = hashlib.sha1(table.encode("utf-8")).hexdigest()[:8]
    head = f"{STAGING_PREFIX}{run_id}_"
    room = MAX_IDENTIFIER - len(head) - len(digest) - 1
    if room < 1:
        raise SpecError(f"run id {run_id} is too long for a staging table name")
    return f"{head}{table[:room]}_{digest}"


class WarehouseSql:
    """The statements of one load: a run's tables into one schema of one dialect."""

    def __init__(self, tables: Tables, dialect: str, schema: str, run_id: int, loaded_at: str,
                 cursor_column: Optional[str] = None, staged_by_copy: bool = False) -> None:
        _check_dialect(dialect)
        self.tables = tables
        # True when each staging table is filled by one COPY of exactly the manifest's files (the embedded load on
        # postgres). Then it holds each curated row once (a COPY commits whole; Spark's JDBC writer commits per
        # partition, so a retried task can stage a row twice), and its columns are typed (COPY parses the values,
        # and no JVM time zone is in the way), so the merge neither dedupes unique keys nor casts.
        self.staged_by_copy = staged_by_copy
        self.cursor_column = cursor_column  # a parent column; when set, a load never replaces a newer row
        self.dialect = dialect
        self.schema = schema
        self.run_id = int(run_id)
        self.loaded_at = loaded_at  # 'YYYY-MM-DD HH:MM:SS.ffffff', UTC

    # names -----------------------------------------------------------------------------------------------

    def target(self, table: Table) -> str:
        return qualified(self.schema, table.name)

    def staging(self, table: Table) -> str:
        return qualified(self.schema, staging_table(self.run_id, table.name))

    def columns(self, table: Table) -> List[OutputColumn]:
        return self.tables.output_columns(table)

    def _loaded_at(self) -> str:
        return f"CAST({literal(self.loaded_at)} AS TIMESTAMP)"

    # setup, outside the load's transaction --------------------------------------------------------------

    def create_schema(self) -> str:
        return f"CREATE SCHEMA IF NOT EXISTS {ident(self.schema)}"

    def create_ledger(self) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {qualified(self.schema, LEDGER)} ("
            f"{ident('run_id')} BIGINT NOT NULL, {ident('table_name')} VARCHAR(128) NOT NULL, "
            f"{ident('rows')} BIGINT NOT NULL, {ident('loaded_at')} TIMESTAMP NOT NULL, "
            f"PRIMARY KEY ({ident('run_id')}, {ident('table_name')}))"
        )

    def create_target(self, table: Table) -> str:
        columns = [f"{ident(c.name)} {column_type(c.type, self.dialect)}" for c in self.columns(table)]
        columns += [f"{ident(RUN_ID_COLUMN)} BIGINT", f"{ident(LOADED_AT_COLUMN)} TIMESTAMP"]
        return f"CREATE TABLE IF NOT EXISTS {self.target(table)} ({', '.join(columns)})"

    def setup(self) -> List[Statement]:
        """The schema and the ledger. The target tables are the schema evolution's (afluente_spark/evolve.py),
        created in the load's transaction with the columns they lack."""
        return [("create schema", self.create_schema()), ("create ledger", self.create_ledger())]

    def create_targets(self) -> List[Statement]:
        return [(f"create table {t.name}", self.create_target(t)) for t in self.tables.all]

    def select_ledger(self) -> str:
        return (
            f"SELECT {ident('table_name')}, {ident('rows')} FROM {qualified(self.schema, LEDGER)} "
            f"WHERE {ident('run_id')} = {self.run_id} ORDER BY {ident('table_name')}"
        )

    def drop_staging(self, table: Table) -> str:
        return f"DROP TABLE IF EXISTS {self.staging(table)}"

    def create_staging(self, table: Table) -> str:
        columns = ", ".join(f"{ident(c.name)} {staging_type(c.type, self.dialect, self.staged_by_copy)}"
                            for c in self.columns(table))
        unlogged = "UNLOGGED " if self.dialect == "postgres" else ""
        return f"CREATE {unlogged}TABLE {self.staging(table)} ({columns})"

    def staging_statements(self, table: Table) -> List[Statement]:
        return [
            (f"drop staging for {table.name}", self.drop_staging(table)),
            (f"create staging for {table.name}", self.create_staging(table)),
        ]

    def copy(self, table: Table, s3_prefix: str, role_arn: str) -> str:
        """Redshift: fill a staging table from the table's curated Parquet folder (its columns in order)."""
        if self.dialect != "redshift":
            raise SpecError("COPY … FORMAT AS PARQUET is for redshift")
        return (
            f"COPY {self.staging(table)} FROM {literal(s3_prefix)} "
            f"IAM_ROLE {literal(role_arn)} FORMAT AS PARQUET"
        )

    # the load's transaction ------------------------------------------------------------------------------

    def _deduped_insert(self, table: Table) -> str:
        columns = self.columns(table)
        names = ", ".join(ident(c.name) for c in columns)
        keys = ", ".join(ident(k) for k in table.key)
        values = ", ".join(staged_value(ident(c.name), c.type, self.dialect, self.staged_by_copy) for c in columns)
        targets = f"{names}, {ident(RUN_ID_COLUMN)}, {ident(LOADED_AT_COLUMN)}"
        if self.staged_by_copy and self.key_is_unique(table):
            return (f"INSERT INTO {self.target(table)} ({targets}) "
                    f"SELECT {values}, {self.run_id}, {self._loaded_at()} FROM {self.staging(table)}")
        # ROW_NUMBER rather than DISTINCT ON: both dialects have it. split_tables already made keys unique
        # within a run, so the order among equal keys does not matter.
        inner = (
            f"SELECT {names}, ROW_NUMBER() OVER (PARTITION BY {keys} ORDER BY {keys}) AS {ident(ROW_NUMBER)} "
            f"FROM {self.staging(table)}"
        )
        return (
            f"INSERT INTO {self.target(table)} ({targets}) "
            f"SELECT {values}, {self.run_id}, {self._loaded_at()} "
            f"FROM ({inner}) AS {ident(DEDUPED)} WHERE {ident(ROW_NUMBER)} = 1"
        )

    def key_is_unique(self, table: Table) -> bool:
        """Whether split_tables already made the table's key unique within a run: the parent's key always; a
        child's (deduped per parent) when it holds every parent key column."""
        return not table.is_child or {column for column, _ in table.parent_key} <= set(table.key)

    def _match(self, target: Table, pairs: Sequence[Tuple[str, str]], staged: Table) -> str:
        """`target.col = staged.col` for each (target column, staging column) pair."""
        staging_name = ident(staging_table(self.run_id, staged.name))
        types = {c.name: c.type for c in self.columns(staged)}
        conditions = [
            f"{ident(target.name)}.{ident(t)} = "
            + staged_value(f"{staging_name}.{ident(s)}", types[s], self.dialect, self.staged_by_copy)
            for t, s in pairs
        ]
        return " AND ".join(conditions)

    def drop_stale(self) -> List[Tuple[str, Statement]]:
        """Before the merge: remove from staging the parent rows whose target row has a greater cursor (a load
        of older data, committing after a newer one), and those rows' children first, while the parent staging
        still has them to join on. A NULL cursor on either side compares as unknown, so the staged row stays.
        Each statement comes with its table: the statement's count is that table's stale rows."""
        if self.cursor_column is None:
            return []
        parent = self.tables.parent
        cursor = ident(self.cursor_column)
        staged_cursor = staged_value(f"{ident(staging_table(self.run_id, parent.name))}.{cursor}",
                                     parent.get_type(self.cursor_column), self.dialect, self.staged_by_copy)
        same_key = self._match(parent, [(k, k) for k in parent.key], parent)
        newer = f"{same_key} AND {ident(parent.name)}.{cursor} > {staged_cursor}"
        statements: List[Tuple[str, Statement]] = []
        for child in self.tables.children:
            of_parent = " AND ".join(
                f"{ident(staging_table(self.run_id, child.name))}.{ident(c)} = "
                f"{ident(staging_table(self.run_id, parent.name))}.{ident(p)}"
                for c, p in child.parent_key
            )
            statements.append((child.name, (
                f"stale rows of {child.name}",
                f"DELETE FROM {self.staging(child)} USING {self.staging(parent)}, {self.target(parent)} "
                f"WHERE {of_parent} AND {newer}",
            )))
        statements.append((parent.name, (
            f"stale rows of {parent.name}",
            f"DELETE FROM {self.staging(parent)} USING {self.target(parent)} WHERE {newer}",
        )))
        return statements

    def merge(self, table: Table) -> List[Statement]:
        """The parent: replace the rows whose key is in the run. A child: remove every row of the run's parents
        (so an element removed upstream disappears), then insert the run's rows."""
        parent = self.tables.parent
        if not table.is_child:
            match = self._match(table, [(k, k) for k in table.key], table)
        else:
            match = self._match(table, list(table.parent_key), parent)
        staged = self.staging(parent if table.is_child else table)
        delete = f"DELETE FROM {self.target(table)} USING {staged} WHERE {match}"
        return [(f"delete from {table.name}", delete), (f"insert into {table.name}", self._deduped_insert(table))]

    def insert_ledger(self, table: Table, rows: int) -> str:
        return (
            f"INSERT INTO {qualified(self.schema, LEDGER)} "
            f"({ident('run_id')}, {ident('table_name')}, {ident('rows')}, {ident('loaded_at')}) "
            f"VALUES ({self.run_id}, {literal(table.name)}, {int(rows)}, {self._loaded_at()})"
        )
