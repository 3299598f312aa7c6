"""One JSON pipeline for our events and the libraries' logs, with secrets redacted."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from monitor import logs


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    logs.configure("info", "json", stream=out)
    yield out
    logs._secrets.clear()
    logging.getLogger().handlers.clear()


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_our_events_are_json_lines_with_timestamp_level_and_event(stream: io.StringIO) -> None:
    structlog.get_logger("monitor").warning("poll_failed", agent_id="a", reason="timeout")
    [line] = lines(stream)
    assert line["event"] == "poll_failed"
    assert line["level"] == "warning"
    assert line["agent_id"] == "a"
    assert str(line["timestamp"]).endswith("Z")


def test_library_logs_take_the_same_pipeline_and_are_quiet_at_info(stream: io.StringIO) -> None:
    logging.getLogger("httpx").info("HTTP Request: GET https://api.elevenlabs.io/... 200")
    logging.getLogger("apscheduler.scheduler").info("Added job")
    logging.getLogger("apscheduler.executors.default").warning("Run time of job was missed")
    [line] = lines(stream)
    assert line["event"] == "Run time of job was missed"
    assert line["logger"] == "apscheduler.executors.default"
    assert line["level"] == "warning"


def test_a_registered_secret_never_reaches_a_line(stream: io.StringIO) -> None:
    logs.register_secret("sk_live_secret_value")
    structlog.get_logger("monitor").error("oops", detail="key sk_live_secret_value leaked", n=1)
    logging.getLogger("httpx").error("header xi-api-key: sk_live_secret_value")
    text = stream.getvalue()
    assert "sk_live_secret_value" not in text
    assert text.count("[REDACTED]") == 2


def test_exceptions_are_data_without_local_variables(stream: io.StringIO) -> None:
    def fail(api_key: str) -> None:
        raise RuntimeError("boom")

    try:
        fail("sk_in_a_local_variable")
    except RuntimeError:
        structlog.get_logger("monitor").exception("crashed")
    [line] = lines(stream)
    assert "sk_in_a_local_variable" not in json.dumps(line)
    assert isinstance(line["exception"], list)
