from __future__ import annotations

from typing import Any, Optional

#: The exit codes of a step's main (contract/steps.ts has the same): a failure a retry may fix (a refused
#: connection, a timeout, a bug), and one that fails the same way until the spec, the data or the warehouse changes.
EXIT_FAILED = 1
EXIT_PERMANENT = 2

#: SQLSTATE classes where the statement, the rows or the tables are at fault, not the moment: feature not
#: supported (0A), data exception (22), integrity constraint violation (23: a NOT NULL column the load does not
#: know), invalid catalog or schema name (3D, 3F), syntax error or access rule violation (42: a missing column or
#: table, a denied privilege). Connection failures (08), serialization failures and deadlocks (40), insufficient
#: resources (53) and operator intervention (57) stay retryable, as does an error with no SQLSTATE.
PERMANENT_SQLSTATE_CLASSES = frozenset({"0A", "22", "23", "3D", "3F", "42"})


class StepError(Exception):
    """A failure the step explains in one line: the main prints `<job>: <message>` and exits non-zero, with
    EXIT_PERMANENT when `permanent` (running the step again on the same spec, data and warehouse fails the same
    way), else EXIT_FAILED."""

    permanent = False

    def __init__(self, message: str, permanent: Optional[bool] = None) -> None:
        super().__init__(message)
        if permanent is not None:
            self.permanent = permanent


class SpecError(StepError):
    """The spec document is not what contract/steps.ts describes."""

    permanent = True


class DataError(StepError):
    """A record of the run's validated data does not fit the tables: the same data fails the same way."""

    permanent = True


def exit_code(error: Optional[BaseException]) -> int:
    """A failed main's exit code: EXIT_PERMANENT for a permanent StepError, else EXIT_FAILED."""
    return EXIT_PERMANENT if isinstance(error, StepError) and error.permanent else EXIT_FAILED


def permanent_sqlstate(state: Optional[str]) -> bool:
    """Whether a warehouse error with this SQLSTATE fails the same way on every retry."""
    return bool(state) and str(state)[:2].upper() in PERMANENT_SQLSTATE_CLASSES


def java_sqlstate(error: BaseException) -> Optional[str]:
    """The SQLSTATE of a Py4J error's java.sql.SQLException (the outermost that has one, following both causes
    and a batch's next exceptions), or None."""
    pending = [getattr(error, "java_exception", None)]
    seen = 0
    while pending and seen < 20:
        java: Any = pending.pop(0)
        seen += 1
        if java is None:
            continue
        try:
            state = java.getSQLState()
        except Exception:  # noqa: BLE001 - not an SQLException: it has no getSQLState
            state = None
        if state:
            return str(state)
        try:
            pending.append(java.getNextException())
        except Exception:  # noqa: BLE001 - not an SQLException
            pass
        pending.append(java.getCause())
    return None


def one_line(text: str, limit: int = 2000) -> str:
    """Collapses a message to one line, so the runner can report the last line of stderr as the reason."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def java_message(error: BaseException) -> str:
    """The most useful message of a Py4J error: the deepest Java cause, or a JSON parse error when there is one."""
    java = getattr(error, "java_exception", None)
    if java is None:
        return str(error)
    messages = []
    seen = 0
    while java is not None and seen < 20:
        message = java.getMessage()
        if message:
            messages.append(str(message))
        java = java.getCause()
        seen += 1
    for message in messages:
        if "CANNOT_PARSE_JSON_FIELD" in message or "CAST_INVALID_INPUT" in message:
            return _strip_cause_prefix(message)
    return _strip_cause_prefix(messages[-1]) if messages else str(error)


def _strip_cause_prefix(message: str) -> str:
    # A wrapped cause repeats its class name first ("org.apache...Exception: the message").
    head, sep, rest = message.partition(": ")
    if sep and "." in head and " " not in head:
        return rest
    return message
