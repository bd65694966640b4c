"""One connection to the warehouse through psycopg: PostgreSQL, or Redshift, which speaks PostgreSQL's protocol.

The load spec names the warehouse by its JDBC URL (the Spark job's driver reads it as is); here it becomes a
libpq connection. The password comes from the environment only, never from the spec.
"""
from __future__ import annotations

from typing import Any, List, Optional, Tuple
from urllib.parse import parse_qs, urlparse

import psycopg

from afluente_spark.errors import SpecError, StepError, permanent_sqlstate

#: Bytes per write of a COPY's data.
COPY_CHUNK = 1024 * 1024
_DEFAULT_PORTS = {"postgresql": 5432, "redshift": 5439}


class WarehouseError(StepError):
    """A statement the warehouse refused; permanent when its SQLSTATE says a retry fails the same way."""

    @classmethod
    def of(cls, what: str, error: psycopg.Error) -> "WarehouseError":
        return cls(f"{what}: {_message(error)}", permanent=permanent_sqlstate(error.sqlstate))


def connection_args(jdbc_url: str, dialect: str) -> dict:
    """libpq parameters from `jdbc:postgresql://host:port/db?…` or `jdbc:redshift://host:port/db?…`. Of the
    URL's own parameters only the TLS mode carries over (`sslmode`, or `ssl=true`). Redshift is always reached
    over TLS with its certificate and host name verified against the system's CAs (Amazon's are among them)."""
    if not jdbc_url.startswith("jdbc:"):
        raise SpecError(f"the warehouse URL {jdbc_url!r} is not a JDBC URL (jdbc:postgresql://… or jdbc:redshift://…)")
    parsed = urlparse(jdbc_url[len("jdbc:"):])
    if parsed.scheme not in _DEFAULT_PORTS or not parsed.hostname:
        raise SpecError(f"the warehouse URL {jdbc_url!r} names no postgresql or redshift host")
    query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
    args = {"host": parsed.hostname, "port": parsed.port or _DEFAULT_PORTS[parsed.scheme],
            "dbname": parsed.path.lstrip("/") or ("dev" if dialect == "redshift" else "postgres")}
    if dialect == "redshift":
        args.update(sslmode="verify-full", sslrootcert="system")
    elif "sslmode" in query:
        args["sslmode"] = query["sslmode"]
    elif query.get("ssl") == "true":
        args["sslmode"] = "require"
    return args


class Warehouse:
    def __init__(self, dialect: str, jdbc_url: str, user: Optional[str], password: Optional[str]) -> None:
        args = connection_args(jdbc_url, dialect)
        try:
            self.connection = psycopg.connect(**args, user=user, password=password, autocommit=True,
                                              application_name="afluente embedded load")
        except psycopg.Error as error:
            raise WarehouseError.of(f"cannot connect to the warehouse at {args['host']}:{args['port']}/{args['dbname']}",
                                    error) from None

    def execute(self, sql: str, label: str) -> int:
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(sql)
                return max(cursor.rowcount, 0)
        except psycopg.Error as error:
            raise WarehouseError.of(f"{label} failed", error) from None

    def query(self, sql: str, label: str) -> List[Tuple[Any, ...]]:
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(sql)
                return list(cursor.fetchall())
        except psycopg.Error as error:
            raise WarehouseError.of(f"{label} failed", error) from None

    def copy_in(self, statement: str, path: str, label: str) -> None:
        """Streams a file through `COPY … FROM STDIN`."""
        try:
            with self.connection.cursor() as cursor, cursor.copy(statement) as copy, open(path, "rb") as source:
                while True:
                    chunk = source.read(COPY_CHUNK)
                    if not chunk:
                        break
                    copy.write(chunk)
        except psycopg.Error as error:
            raise WarehouseError.of(f"{label} failed", error) from None

    def set_autocommit(self, on: bool) -> None:
        self.connection.autocommit = on

    def commit(self) -> None:
        try:
            self.connection.commit()
        except psycopg.Error as error:
            raise WarehouseError.of("commit failed", error) from None

    def rollback(self) -> None:
        try:
            self.connection.rollback()
        except psycopg.Error:
            pass

    def close(self) -> None:
        self.connection.close()


def _message(error: psycopg.Error) -> str:
    diag = getattr(error, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    return primary or str(error).strip()
