from __future__ import annotations


class StepError(Exception):
    """A failure the step explains in one line: the main prints `<job>: <message>` and exits non-zero."""


class SpecError(StepError):
    """The spec document is not what contract/steps.ts describes."""


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
