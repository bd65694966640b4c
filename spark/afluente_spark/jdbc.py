"""One JDBC connection from the Spark driver (through spark._jvm), for the load's DDL and its transaction."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from py4j.protocol import Py4JJavaError
from pyspark.sql import SparkSession

from .errors import StepError, java_message, java_sqlstate, permanent_sqlstate

DRIVERS = {"postgres": "org.postgresql.Driver", "redshift": "com.amazon.redshift.jdbc42.Driver"}


class WarehouseError(StepError):
    """A statement the warehouse refused; permanent when its SQLSTATE says a retry fails the same way."""

    @classmethod
    def of(cls, what: str, error: BaseException) -> "WarehouseError":
        return cls(f"{what}: {java_message(error)}", permanent=permanent_sqlstate(java_sqlstate(error)))


def with_param(url: str, name: str, value: str) -> str:
    if f"{name}=" in url:
        return url
    return f"{url}{'&' if '?' in url else '?'}{name}={value}"


def writer_url(dialect: str, url: str) -> str:
    """The URL Spark's JDBC writer uses: batched inserts rewritten into multi-row INSERTs on PostgreSQL."""
    return with_param(url, "reWriteBatchedInserts", "true") if dialect == "postgres" else url


def connection_properties(dialect: str, user: Optional[str], password: Optional[str]) -> Dict[str, str]:
    props = {"driver": DRIVERS[dialect]}
    if user:
        props["user"] = user
    if password:
        props["password"] = password
    return props


class Warehouse:
    def __init__(self, spark: SparkSession, dialect: str, url: str, user: Optional[str], password: Optional[str]):
        jvm = spark.sparkContext._jvm
        driver = DRIVERS[dialect]
        properties = jvm.java.util.Properties()
        for name, value in connection_properties(dialect, user, password).items():
            if name != "driver":
                properties.setProperty(name, value)
        self._jvm = jvm
        try:
            # Spark's own registry: DriverManager only sees drivers of its caller's class loader, and the
            # driver jar (--jars) lives in Spark's.
            jvm.org.apache.spark.sql.execution.datasources.jdbc.DriverRegistry.register(driver)
            self._conn: Any = jvm.java.sql.DriverManager.getConnection(url, properties)
        except Py4JJavaError as error:
            raise WarehouseError.of(f"cannot connect to {url} as {user or '(no user)'}", error) from None

    def execute(self, sql: str, label: str) -> int:
        """Runs one statement; returns its update count (rows inserted or deleted; 0 for DDL)."""
        statement = self._conn.createStatement()
        try:
            statement.execute(sql)
            return max(int(statement.getUpdateCount()), 0)
        except Py4JJavaError as error:
            raise WarehouseError.of(f"{label} failed", error) from None
        finally:
            statement.close()

    def query(self, sql: str, label: str) -> List[Tuple[Optional[str], ...]]:
        statement = self._conn.createStatement()
        try:
            result = statement.executeQuery(sql)
            width = result.getMetaData().getColumnCount()
            rows = []
            while result.next():
                rows.append(tuple(result.getString(i + 1) for i in range(width)))
            return rows
        except Py4JJavaError as error:
            raise WarehouseError.of(f"{label} failed", error) from None
        finally:
            statement.close()

    def copy_in(self, statement: str, path: str, label: str) -> int:
        """PostgreSQL: streams a local file through `COPY … FROM STDIN` (the driver's CopyManager), all in the
        JVM; returns the rows copied."""
        jvm = self._jvm
        try:
            manager = jvm.org.postgresql.copy.CopyManager(self._conn)
            stream = jvm.java.io.BufferedInputStream(jvm.java.io.FileInputStream(path), 1 << 20)
            try:
                return int(manager.copyIn(statement, stream))
            finally:
                stream.close()
        except Py4JJavaError as error:
            raise WarehouseError.of(f"{label} failed", error) from None

    def set_autocommit(self, on: bool) -> None:
        self._conn.setAutoCommit(on)

    def commit(self) -> None:
        try:
            self._conn.commit()
        except Py4JJavaError as error:
            raise WarehouseError.of("commit failed", error) from None

    def rollback(self) -> None:
        """Never raises: it runs while another error is on its way up."""
        try:
            self._conn.rollback()
        except Py4JJavaError:
            pass

    def close(self) -> None:
        try:
            self._conn.close()
        except Py4JJavaError:
            pass
