"""One JSON line per event on stdout, for our own events and for library logs alike."""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, Processor

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
# Chatty at INFO (a line per request or per job run); they speak only when it matters.
_QUIET_LIBRARIES = ("httpx", "httpcore", "apscheduler", "uvicorn", "uvicorn.error", "asyncio")

_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """A value that must never be written: replaced wherever it appears in a log line."""
    if len(value) >= 4:
        _secrets.add(value)


def redact(text: str) -> str:
    """`text` with every registered secret replaced: for logs, and for what an upstream says
    before it is stored, so that the key can reach no output."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "[REDACTED]")
    return text


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def redact_secrets(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """Last line of defence: the code never logs a secret, and this makes sure."""
    if not _secrets:
        return event_dict
    return {k: _redact(v) for k, v in event_dict.items()}


def _drop_color_message(_: Any, __: str, event_dict: EventDict) -> EventDict:
    event_dict.pop("color_message", None)  # uvicorn's duplicate of the message
    return event_dict


def configure(level: str = "info", fmt: str = "json", stream: TextIO | None = None) -> None:
    """Route structlog and the standard library's logging through one JSON pipeline."""
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        _drop_color_message,
    ]
    renderer: Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
        tracebacks: Processor = structlog.processors.ExceptionRenderer(
            ExceptionDictTransformer(show_locals=False)
        )
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
        tracebacks = structlog.processors.format_exc_info
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            tracebacks,
            redact_secrets,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[level])
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, _LEVELS[level]))
    logging.getLogger("uvicorn.access").disabled = True
