"""Shared fixtures: one local SparkSession for the whole suite, the engine a step runs on (each case of the
split and load suites runs on both; see engines.py), a file:// lake per test, a fresh PostgreSQL schema per test
(dropped afterwards)."""
from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Iterator

import psycopg
import pytest

from engines import EmbeddedEngine, SparkEngine, twin_schema
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


ENGINES = ("spark", "embedded")


@pytest.fixture(params=ENGINES)
def engine(request, spark):
    """The engine under test; the embedded one checks every step against Spark (engines.py)."""
    return SparkEngine(spark) if request.param == "spark" else EmbeddedEngine(spark)


def _engine_param(request) -> str:
    callspec = getattr(request.node, "callspec", None)
    return callspec.params.get("engine", "spark") if callspec is not None else "spark"


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    root = tmp_path / "lake"
    root.mkdir()
    return Lake(root)


@pytest.fixture
def pg(request) -> Iterator[Pg]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    # On the embedded engine, Spark's twin load writes the twin schema; what a test does to its schema by hand
    # is done to the twin too.
    twin = twin_schema(schema) if _engine_param(request) == "embedded" else None
    conn = psycopg.connect(PG_DSN, autocommit=True)
    try:
        yield Pg(conn, schema, PG_URL, twin)
    finally:
        for name in (schema, twin_schema(schema)):
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        conn.close()
