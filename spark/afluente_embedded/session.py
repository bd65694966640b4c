"""One DuckDB database per step, in a temp folder that goes with the step.

The database lives in a file, not in memory, and DuckDB spills to the same folder: with `memory_limit` set, a
run bigger than memory streams through disk instead of growing the process.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Iterator, Optional

import duckdb


@contextlib.contextmanager
def open_session(temp_dir: Optional[str], memory_limit: str, threads: int) -> Iterator[duckdb.DuckDBPyConnection]:
    folder = tempfile.mkdtemp(prefix="afluente-embedded-", dir=temp_dir or None)
    try:
        config = {
            "memory_limit": memory_limit,
            "temp_directory": os.path.join(folder, "spill"),
            # Rows keep no order unless a query says so: lets DuckDB stream and parallelize more.
            "preserve_insertion_order": "false",
            # No extension is ever downloaded: the engine runs offline, with what the wheel ships.
            "autoinstall_known_extensions": "false",
            "autoload_known_extensions": "false",
        }
        if threads > 0:
            config["threads"] = str(threads)
        connection = duckdb.connect(os.path.join(folder, "work.duckdb"), config=config)
        try:
            # Timestamps are instants, read and written in UTC, whatever the machine's zone.
            connection.execute("SET TimeZone = 'UTC'")
            yield connection
        finally:
            connection.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
