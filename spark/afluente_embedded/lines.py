"""Reads the validated parts' lines into DuckDB, each with its part (its index in the spec's inputs) and a
position, so a dedupe tie goes to the later line and an error names the part and line.

DuckDB's CSV reader splits the gzip parts into lines: a delimiter that valid JSON never holds (U+0001 must be
escaped inside a string, and may not appear outside one) makes each line one column, with quoting off. With
insertion order preserved, the table's rows keep the order of the parts as listed and of the lines within each,
so a row's `rowid` is its position: later part, later line, greater rowid.
"""
from __future__ import annotations

from typing import Sequence

import duckdb

from afluente_spark.errors import StepError

LINES = "afl_lines"
PART = "afl_part"
POS = "afl_pos"
LINE = "afl_line"
#: The largest line (record) a part may hold. The reader's buffer is twice that (its default, 16 times, would
#: take most of a small memory limit).
MAX_LINE_BYTES = 8 * 1024 * 1024


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def load_lines(connection: duckdb.DuckDBPyConnection, paths: Sequence[str], keys: Sequence[str]) -> int:
    """Creates the lines table (afl_part, afl_line; rowid is the position) and returns how many lines it holds."""
    if not paths:
        connection.execute(f"CREATE TABLE {LINES} ({PART} INTEGER, {LINE} VARCHAR)")
        return 0
    listed = ", ".join(_literal(p) for p in paths)
    connection.execute("SET preserve_insertion_order = true")
    try:
        connection.execute(
            f"CREATE TABLE {LINES} AS SELECT CAST(list_position([{listed}], filename) - 1 AS INTEGER) AS {PART}, "
            f"column0 AS {LINE} FROM read_csv([{listed}], columns = {{'column0': 'VARCHAR'}}, delim = '\x01', "
            "quote = '', escape = '', header = false, auto_detect = false, filename = true, compression = 'gzip', "
            f"max_line_size = {MAX_LINE_BYTES}, buffer_size = {2 * MAX_LINE_BYTES}, strict_mode = false)")
    except duckdb.Error as error:
        raise StepError(f"cannot read the validated parts as NDJSON lines ({error})".replace("\n", " ")) from None
    finally:
        connection.execute("SET preserve_insertion_order = false")
    return int(connection.execute(f"SELECT count(*) FROM {LINES}").fetchone()[0])


def line_number(connection: duckdb.DuckDBPyConnection, part: int, pos: int) -> int:
    """The 1-based line of the part that the row at position `pos` is."""
    first = connection.execute(f"SELECT min(rowid) FROM {LINES} WHERE {PART} = ?", [part]).fetchone()[0]
    return pos - int(first) + 1
