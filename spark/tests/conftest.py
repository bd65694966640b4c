"""Shared fixtures: one local SparkSession for the whole suite, a file:// lake per test, a fresh PostgreSQL
schema per test (dropped afterwards)."""
from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Iterator

import psycopg
import pytest

from helpers import JDBC_JAR, PG_DSN, PG_URL, Lake, Pg

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


@pytest.fixture(scope="session")
def spark():
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("afluente-spark-tests")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.jars", JDBC_JAR)
        # A JVM time zone other than UTC: the jobs must not depend on it (they set the session time zone).
        .config("spark.driver.extraJavaOptions", "-Duser.timezone=America/Sao_Paulo")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("OFF")
    yield session
    session.stop()


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    root = tmp_path / "lake"
    root.mkdir()
    return Lake(root)


@pytest.fixture
def pg() -> Iterator[Pg]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    conn = psycopg.connect(PG_DSN, autocommit=True)
    try:
        yield Pg(conn, schema, PG_URL)
    finally:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.close()
