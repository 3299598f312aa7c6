"""The ElevenLabs client: answers, failure reasons, retries, limits and the agent listing.

HTTP is served by `httpx.MockTransport`; sleeping is faked and recorded, and the jitter
source is fixed at 0.5, so every wait the client takes is visible and exact.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from email.utils import formatdate
from typing import Any

import httpx
import pytest
import structlog
from hypothesis import example, given, settings
from hypothesis import strategies as st

from monitor.elevenlabs import client as api_module
from monitor.elevenlabs.answers import classify_status, parse_link_body, parse_retry_after
from monitor.elevenlabs.client import (
    MAX_BODY_BYTES,
    MAX_RETRY_AFTER,
    ClientSettings,
    ElevenLabsClient,
)
from monitor.elevenlabs.limiter import RateLimiter
from monitor.evaluate import AGENT_NOT_FOUND, LINK_WITHOUT_EXPIRY, TOKEN_MISSING, Kind, Observation
from monitor.model import AgentSummary, LinkAnswer, PollFailure, PollOutcome, Reason

API_KEY = "sk_0123456789abcdef0123456789abcdef0123456789abcdef"
TOKEN = "cvtkn_SECRET_3f9a8b7c6d5e4f3a2b1c"
EXPIRY = 1_767_225_600
LINK_PATH = "/v1/convai/agents/agent_1/link"

Handler = (
    Callable[[httpx.Request], httpx.Response]
    | Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]
)


def link_body(token: object = None, *, agent_id: str = "agent_1", **extra: object) -> bytes:
    return json.dumps({"agent_id": agent_id, "token": token, **extra}).encode()


def full_token(**overrides: object) -> dict[str, object]:
    return {
        "agent_id": "agent_1",
        "conversation_token": TOKEN,
        "expiration_time_unix_secs": EXPIRY,
        "conversation_id": None,
        "purpose": "shareable_link",
        "token_requester_user_id": "user_42",
    } | overrides


def ok_response(_: httpx.Request | None = None) -> httpx.Response:
    return httpx.Response(200, content=link_body(full_token()))


def error_body(code: str, message: str = "free text") -> bytes:
    return json.dumps({"detail": {"status": code, "message": message}}).encode()


# --- parse_link_body -------------------------------------------------------------------------


def test_a_full_token_gives_its_expiry() -> None:
    answer = parse_link_body(link_body(full_token()))
    assert isinstance(answer, LinkAnswer)
    assert answer.observation == Observation(Kind.LINK, float(EXPIRY))
    assert answer.fingerprint is not None
    assert len(answer.fingerprint) == 24


def test_the_fingerprint_changes_when_the_token_or_its_expiry_changes() -> None:
    def fingerprint(token: dict[str, object]) -> str | None:
        answer = parse_link_body(link_body(token))
        assert isinstance(answer, LinkAnswer)
        return answer.fingerprint

    same = fingerprint(full_token())
    assert fingerprint(full_token(conversation_id="conv_1", purpose="signed_url")) == same
    assert fingerprint(full_token(conversation_token=TOKEN + "x")) != same
    assert fingerprint(full_token(expiration_time_unix_secs=EXPIRY + 1)) != same


@pytest.mark.parametrize("body", [link_body(None), b'{"agent_id": "agent_1"}'])
def test_token_null_or_absent_means_the_link_is_missing(body: bytes) -> None:
    assert parse_link_body(body) == LinkAnswer(TOKEN_MISSING, None)


@pytest.mark.parametrize(
    "token",
    [
        full_token(expiration_time_unix_secs=None),
        {"agent_id": "agent_1", "conversation_token": TOKEN},
    ],
)
def test_a_token_without_an_expiry_is_a_link_that_never_expires(token: dict[str, object]) -> None:
    answer = parse_link_body(link_body(token))
    assert isinstance(answer, LinkAnswer)
    assert answer.observation == LINK_WITHOUT_EXPIRY
    assert answer.fingerprint is not None


def test_unknown_fields_are_allowed_at_both_levels() -> None:
    body = link_body(
        full_token(purpose="some_future_purpose", new_field={"nested": [1, 2]}),
        added_later="yes",
    )
    answer = parse_link_body(body)
    assert isinstance(answer, LinkAnswer)
    assert answer.observation == Observation(Kind.LINK, float(EXPIRY))


OUT_OF_RANGE = (
    "the answer does not fit the schema at token.expiration_time_unix_secs: "
    "not a Unix time in seconds between 2000 and 2200"
)


@pytest.mark.parametrize(
    "expiry",
    [
        10**400,  # too large for a float
        EXPIRY * 1000,  # milliseconds
        1_000_000_000_000_000,  # microseconds-ish, past datetime's range
        946_684_799,  # a second before 2000
        7_258_118_400,  # 2200 itself
        0,
        -1,
    ],
)
def test_an_implausible_expiry_is_an_invalid_response_naming_the_field(expiry: int) -> None:
    body = link_body(full_token(expiration_time_unix_secs=expiry))
    assert parse_link_body(body) == PollFailure(Reason.INVALID_RESPONSE, OUT_OF_RANGE, 200)


@pytest.mark.parametrize(("expiry"), [946_684_800, 7_258_118_399])
def test_the_plausible_range_is_2000_to_2200(expiry: int) -> None:
    answer = parse_link_body(link_body(full_token(expiration_time_unix_secs=expiry)))
    assert isinstance(answer, LinkAnswer)
    assert answer.observation == Observation(Kind.LINK, float(expiry))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (link_body(full_token(expiration_time_unix_secs=True)), "token.expiration_time_unix_secs"),
        (
            link_body(full_token(expiration_time_unix_secs="1767225600")),
            "token.expiration_time_unix_secs",
        ),
        (
            link_body(full_token(expiration_time_unix_secs=1767225600.0)),
            "token.expiration_time_unix_secs",
        ),
        (
            link_body(full_token(expiration_time_unix_secs=1767225600.5)),
            "token.expiration_time_unix_secs",
        ),
        (link_body(full_token(agent_id=7)), "token.agent_id"),
        (link_body(full_token(purpose=True)), "token.purpose"),
        (json.dumps({"agent_id": 1, "token": None}).encode(), "agent_id"),
        (json.dumps({"agent_id": True, "token": None}).encode(), "agent_id"),
    ],
)
def test_no_coercion_of_booleans_strings_or_floats(body: bytes, field: str) -> None:
    assert parse_link_body(body, "agent_1") == PollFailure(
        Reason.INVALID_RESPONSE, f"the answer does not fit the schema at {field}", 200
    )


def test_an_answer_about_another_agent_is_an_invalid_response() -> None:
    body = link_body(full_token(), agent_id="agent_2")
    assert parse_link_body(body, "agent_1") == PollFailure(
        Reason.INVALID_RESPONSE,
        "the answer does not fit the schema at agent_id: not the agent asked for",
        200,
    )
    assert isinstance(parse_link_body(link_body(full_token()), "agent_1"), LinkAnswer)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"token": null}', "the answer does not fit the schema at agent_id"),
        (b'{"agent_id": null}', "the answer does not fit the schema at agent_id"),
        (b"[]", "the answer does not fit the schema at body"),
        (b'[{"agent_id": "agent_1"}]', "the answer does not fit the schema at body"),
        (b'"agent_1"', "the answer does not fit the schema at body"),
        (b"42", "the answer does not fit the schema at body"),
        (b"null", "the answer does not fit the schema at body"),
        (link_body(12345), "the answer does not fit the schema at token"),
        (link_body(TOKEN), "the answer does not fit the schema at token"),
        (
            link_body({"agent_id": "agent_1"}),
            "the answer does not fit the schema at token.conversation_token",
        ),
        (
            link_body(full_token(conversation_token=12345)),
            "the answer does not fit the schema at token.conversation_token",
        ),
        (
            link_body(full_token(expiration_time_unix_secs="tomorrow")),
            "the answer does not fit the schema at token.expiration_time_unix_secs",
        ),
        (b"", "the body is not JSON"),
        (b"<html>Bad Gateway</html>", "the body is not JSON"),
        (b'{"agent_id": "agent_1", "token": ', "the body is not JSON"),
        (b'\xff\xfe{"agent_id"', "the body is not JSON"),
        (b"[" * 100_000, "the body is not JSON"),
    ],
)
def test_a_body_that_does_not_fit_is_an_invalid_response(body: bytes, detail: str) -> None:
    assert parse_link_body(body) == PollFailure(Reason.INVALID_RESPONSE, detail, 200)


@pytest.mark.parametrize(
    "body",
    [
        link_body(full_token()),
        link_body(full_token(expiration_time_unix_secs=None)),
        link_body(full_token(expiration_time_unix_secs="not a number")),
        link_body({"conversation_token": [TOKEN]}),
        link_body({"conversation_token": {"value": TOKEN}}),
    ],
)
def test_the_conversation_token_never_appears_in_the_result(body: bytes) -> None:
    outcome = parse_link_body(body)
    assert TOKEN not in repr(outcome)
    assert TOKEN not in str(outcome)


# --- classify_status -------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["invalid_api_key", "missing_permissions"])
def test_401_is_unauthorized_and_shows_which_kind(code: str) -> None:
    failure = classify_status(401, error_body(code, f"key {API_KEY} rejected"), None)
    assert failure == PollFailure(Reason.UNAUTHORIZED, f"HTTP 401 {code}", 401)


def test_403_is_unauthorized() -> None:
    assert classify_status(403, b"", None) == PollFailure(Reason.UNAUTHORIZED, "HTTP 403", 403)


def test_404_is_not_found_and_a_definitive_answer_about_the_agent() -> None:
    failure = classify_status(404, error_body("agent_not_found"), None)
    assert failure == PollFailure(Reason.NOT_FOUND, "HTTP 404 agent_not_found", 404)
    assert failure.observation == AGENT_NOT_FOUND


def test_other_failures_say_nothing_about_the_agent() -> None:
    assert classify_status(500, b"", None).observation is None
    assert classify_status(401, b"", None).observation is None


def test_422_reads_the_fastapi_detail_list() -> None:
    body = json.dumps(
        {"detail": [{"loc": ["path", "agent_id"], "msg": "bad id", "type": "value_error"}]}
    ).encode()
    assert classify_status(422, body, None) == PollFailure(
        Reason.CLIENT_ERROR, "HTTP 422 value_error", 422
    )


def test_429_is_rate_limited_and_keeps_retry_after() -> None:
    assert classify_status(429, b"", 2.0) == PollFailure(
        Reason.RATE_LIMITED, "HTTP 429", 429, retry_after=2.0
    )


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_a_server_error_and_keeps_retry_after(status: int) -> None:
    assert classify_status(status, b"<html>oops</html>", 5.0) == PollFailure(
        Reason.SERVER_ERROR, f"HTTP {status}", status, retry_after=5.0
    )


def test_another_4xx_is_a_client_error_and_is_not_retried_later() -> None:
    assert classify_status(418, b"", 3.0) == PollFailure(Reason.CLIENT_ERROR, "HTTP 418", 418)


@pytest.mark.parametrize("status", [301, 302, 304, 307])
def test_a_redirect_is_an_invalid_response(status: int) -> None:
    assert classify_status(status, b"", None) == PollFailure(
        Reason.INVALID_RESPONSE, f"HTTP {status}", status
    )


@pytest.mark.parametrize(
    "body",
    [
        error_body(f"Your key {API_KEY} is invalid"),
        error_body("Invalid API key"),
        json.dumps({"detail": "You shall not pass"}).encode(),
        json.dumps({"detail": {"message": "free text only"}}).encode(),
        json.dumps({"detail": [{"msg": "field required", "type": "Value Error!"}]}).encode(),
        json.dumps({"detail": {"status": "x" * 200}}).encode(),
        json.dumps(["invalid_api_key"]).encode(),
        b"invalid_api_key",
    ],
)
def test_free_text_from_the_api_is_never_copied_into_the_detail(body: bytes) -> None:
    assert classify_status(401, body, None).detail == "HTTP 401"


@pytest.mark.parametrize(
    "echoed",
    [
        "tok_canary_a1_b7c1e0",  # the tests' own canary token shape
        TOKEN,
        "cvtkn_abc123",
        API_KEY,
        "sk_live_keylike",
        "abcdefghijklmnopqrstuvwxyzabcdefghij",  # one long random-looking run
        "eyjhbgcioijiuzi.eyjzdwiioiixmjm",  # a lowercased JWT
    ],
)
@pytest.mark.parametrize("where", ["status", "code", "type"])
def test_an_echoed_token_or_key_is_never_taken_for_a_code(echoed: str, where: str) -> None:
    body = json.dumps({"detail": {where: echoed}}).encode()
    assert classify_status(500, body, None).detail == "HTTP 500"


@pytest.mark.parametrize(
    "code",
    [
        "invalid_api_key",
        "missing_permissions",
        "agent_not_found",
        "document_not_found",
        "too_many_concurrent_requests",
        "concurrent_limit_exceeded",
        "system_busy",
        "value_error.missing",
    ],
)
def test_the_api_s_own_codes_are_kept(code: str) -> None:
    assert classify_status(401, error_body(code), None).detail == f"HTTP 401 {code}"


def test_a_token_about_another_agent_does_not_fit() -> None:
    body = link_body(full_token(agent_id="other"))
    assert parse_link_body(body, "agent_1") == PollFailure(
        Reason.INVALID_RESPONSE,
        "the answer does not fit the schema at token.agent_id: not the agent asked for",
        200,
    )
    assert isinstance(
        parse_link_body(link_body(full_token(agent_id="agent_1")), "agent_1"), LinkAnswer
    )


def test_the_first_identifier_shaped_code_wins() -> None:
    body = json.dumps({"detail": {"status": "Not A Code", "code": "quota_exceeded"}}).encode()
    assert classify_status(429, body, None).detail == "HTTP 429 quota_exceeded"


# --- parse_retry_after -----------------------------------------------------------------------

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("2", 2.0), ("0", 0.0), ("1.5", 1.5), (" 30 ", 30.0), ("3600", 3600.0)],
)
def test_retry_after_in_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value, NOW) == seconds


def test_retry_after_as_an_http_date_is_relative_to_now() -> None:
    assert parse_retry_after(formatdate(NOW + 42, usegmt=True), NOW) == 42.0


def test_retry_after_as_a_date_in_the_past_is_zero() -> None:
    assert parse_retry_after(formatdate(NOW - 600, usegmt=True), NOW) == 0.0


@pytest.mark.parametrize(
    "value",
    [None, "", "soon", "-1", "1e3", "2 seconds", "Wed, 32 Foo 2015 99:99:99 GMT", "Tue, 14 Nov"],
)
def test_unreadable_retry_after_is_none(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


# --- ElevenLabsClient over a mock transport --------------------------------------------------


class Recorder:
    """The fake `sleep`: records every wait and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)


def make_client(
    handler: Handler,
    recorder: Recorder,
    *,
    base_url: str = "https://api.elevenlabs.test",
    timeout: float = 5.0,
    max_retries: int = 3,
    rng: Callable[[], float] = lambda: 0.5,
    on_request: Callable[[float], None] = lambda _: None,
) -> ElevenLabsClient:
    settings = ClientSettings(
        base_url=base_url,
        timeout=timeout,
        max_concurrency=4,
        max_requests_per_second=1000.0,  # the limiter is tested on its own, with a fake clock
        max_retries=max_retries,
    )
    return ElevenLabsClient(
        settings,
        API_KEY,
        transport=httpx.MockTransport(handler),
        sleep=recorder.sleep,
        rng=rng,
        on_request=on_request,
    )


def get_link(
    handler: Handler, agent_id: str = "agent_1", **options: Any
) -> tuple[PollOutcome, list[float]]:
    """One `get_link` through the mock transport: the outcome and the waits in between."""
    recorder = Recorder()

    async def scenario() -> PollOutcome:
        client = make_client(handler, recorder, **options)
        try:
            return await client.get_link(agent_id)
        finally:
            await client.aclose()

    return asyncio.run(scenario()), recorder.delays


class Script:
    """A handler that answers from a list of responses (the last one repeats) and counts."""

    def __init__(self, *responses: httpx.Response | type[Exception]) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        index = min(len(self.requests), len(self.responses)) - 1
        response = self.responses[index]
        if isinstance(response, type):
            raise response(f"failed talking to {request.url} with {request.headers!r}")
        return response


def test_a_request_carries_the_key_and_a_user_agent_and_asks_for_the_link() -> None:
    script = Script(ok_response())
    outcome, _ = get_link(script)
    assert isinstance(outcome, LinkAnswer)
    (request,) = script.requests
    assert request.method == "GET"
    assert request.url == httpx.URL(f"https://api.elevenlabs.test{LINK_PATH}")
    assert request.headers["xi-api-key"] == API_KEY
    assert request.headers["user-agent"].startswith("elevenlabs-link-monitor/")
    assert request.headers["accept"] == "application/json"
    assert request.headers["accept-encoding"] == "identity"


def test_a_base_url_with_a_path_prefix_keeps_it() -> None:
    script = Script(ok_response())
    get_link(script, base_url="https://proxy.example/elevenlabs")
    assert script.requests[0].url.path == f"/elevenlabs{LINK_PATH}"


def test_an_agent_id_from_the_api_stays_one_path_segment() -> None:
    script = Script(ok_response())
    get_link(script, agent_id="../../v1/user?x=1#y")
    assert script.requests[0].url.raw_path == (
        b"/v1/convai/agents/..%2F..%2Fv1%2Fuser%3Fx%3D1%23y/link"
    )


def test_every_request_reports_its_duration() -> None:
    durations: list[float] = []
    get_link(Script(httpx.Response(503), ok_response()), on_request=durations.append)
    assert len(durations) == 2
    assert all(d >= 0 for d in durations)


def test_a_503_is_retried_after_a_short_backoff() -> None:
    script = Script(httpx.Response(503), ok_response())
    outcome, delays = get_link(script)
    assert isinstance(outcome, LinkAnswer)
    assert len(script.requests) == 2
    assert delays == [0.375]  # half of 0.5 s, plus 0.5 of the other half


@pytest.mark.parametrize("jitter", [0.0, 0.5, 0.999])
def test_backoff_doubles_and_stays_within_equal_jitter_bounds(jitter: float) -> None:
    script = Script(httpx.Response(503), httpx.Response(502), httpx.Response(500), ok_response())
    outcome, delays = get_link(script, rng=lambda: jitter)
    assert isinstance(outcome, LinkAnswer)
    assert len(script.requests) == 4
    ceilings = [0.5, 1.0, 2.0]
    assert len(delays) == 3
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
        assert delay == pytest.approx(ceiling / 2 + jitter * ceiling / 2)


def test_backoff_is_capped_at_30_seconds() -> None:
    script = Script(httpx.Response(503))
    _, delays = get_link(script, max_retries=10, rng=lambda: 1.0)
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]


def test_the_client_gives_up_after_max_retries_with_the_last_failure() -> None:
    script = Script(httpx.Response(503))
    outcome, delays = get_link(script, max_retries=3)
    assert outcome == PollFailure(Reason.SERVER_ERROR, "HTTP 503", 503)
    assert len(script.requests) == 4
    assert delays == [0.375, 0.75, 1.5]


def test_max_retries_zero_means_a_single_attempt() -> None:
    script = Script(httpx.Response(500))
    outcome, delays = get_link(script, max_retries=0)
    assert isinstance(outcome, PollFailure)
    assert outcome.reason is Reason.SERVER_ERROR
    assert (len(script.requests), delays) == (1, [])


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (401, Reason.UNAUTHORIZED),
        (403, Reason.UNAUTHORIZED),
        (404, Reason.NOT_FOUND),
        (422, Reason.CLIENT_ERROR),
        (400, Reason.CLIENT_ERROR),
        (302, Reason.INVALID_RESPONSE),
    ],
)
def test_answers_that_will_not_change_are_not_retried(status: int, reason: Reason) -> None:
    script = Script(
        httpx.Response(status, headers={"retry-after": "1", "location": "/elsewhere"}),
        ok_response(),
    )
    outcome, delays = get_link(script)
    assert isinstance(outcome, PollFailure)
    assert (outcome.reason, outcome.status, outcome.retry_after) == (reason, status, None)
    assert (len(script.requests), delays) == (1, [])


def test_an_invalid_200_is_not_retried() -> None:
    script = Script(httpx.Response(200, content=b"not json"), ok_response())
    outcome, delays = get_link(script)
    assert outcome == PollFailure(Reason.INVALID_RESPONSE, "the body is not JSON", 200)
    assert (len(script.requests), delays) == (1, [])


def test_a_429_waits_as_long_as_retry_after_says() -> None:
    script = Script(httpx.Response(429, headers={"retry-after": "2"}), ok_response())
    outcome, delays = get_link(script)
    assert isinstance(outcome, LinkAnswer)
    assert (len(script.requests), delays) == (2, [2.0])


@pytest.mark.parametrize(
    "retry_after", ["3600", formatdate(time.time() + 86400, usegmt=True)], ids=["seconds", "date"]
)
def test_retry_after_is_capped_at_60_seconds(retry_after: str) -> None:
    script = Script(httpx.Response(429, headers={"retry-after": retry_after}), ok_response())
    _, delays = get_link(script)
    assert delays == [MAX_RETRY_AFTER] == [60.0]


def test_a_503_with_retry_after_waits_as_told() -> None:
    script = Script(httpx.Response(503, headers={"retry-after": "7"}), ok_response())
    _, delays = get_link(script)
    assert delays == [7.0]


def test_a_429_without_retry_after_backs_off_and_gives_up_as_rate_limited() -> None:
    script = Script(httpx.Response(429))
    outcome, delays = get_link(script, max_retries=2)
    assert outcome == PollFailure(Reason.RATE_LIMITED, "HTTP 429", 429)
    assert delays == [0.375, 0.75]


def test_a_body_larger_than_the_cap_is_an_invalid_response() -> None:
    script = Script(httpx.Response(200, content=b" " * (MAX_BODY_BYTES + 1)))
    outcome, delays = get_link(script)
    assert outcome == PollFailure(Reason.INVALID_RESPONSE, "the answer is larger than 256 KiB", 200)
    assert (len(script.requests), delays) == (1, [])


def test_a_body_of_exactly_the_cap_is_read() -> None:
    body = link_body(full_token())
    script = Script(httpx.Response(200, content=body + b" " * (MAX_BODY_BYTES - len(body))))
    outcome, _ = get_link(script)
    assert isinstance(outcome, LinkAnswer)


def test_an_endless_body_stops_being_read_past_the_cap() -> None:
    chunk = 64 * 1024
    sent: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(1000):  # 64 MiB if nobody stopped reading
            sent.append(chunk)
            yield b"x" * chunk

    outcome, _ = get_link(lambda _: httpx.Response(200, content=endless()))
    assert isinstance(outcome, PollFailure)
    assert outcome.reason is Reason.INVALID_RESPONSE
    assert sum(sent) <= MAX_BODY_BYTES + chunk


def test_a_connection_error_is_retried_and_its_detail_holds_no_key() -> None:
    script = Script(httpx.ConnectError)
    outcome, delays = get_link(script)
    assert outcome == PollFailure(Reason.CONNECTION, "cannot connect")
    assert len(script.requests) == 4
    assert delays == [0.375, 0.75, 1.5]
    assert API_KEY not in repr(outcome)
    assert "xi-api-key" not in repr(outcome)


@pytest.mark.parametrize(
    ("error", "detail"),
    [
        (httpx.ReadError, "the connection broke while reading"),
        (httpx.WriteError, "the connection broke while writing"),
        (httpx.RemoteProtocolError, "the server broke the HTTP protocol"),
        (httpx.UnsupportedProtocol, "UnsupportedProtocol"),
    ],
)
def test_other_transport_errors_are_connection_failures(
    error: type[httpx.HTTPError], detail: str
) -> None:
    outcome, _ = get_link(Script(error), max_retries=0)
    assert outcome == PollFailure(Reason.CONNECTION, detail)
    assert API_KEY not in repr(outcome)


@pytest.mark.parametrize("error", [httpx.ReadTimeout, httpx.ConnectTimeout, httpx.PoolTimeout])
def test_an_httpx_timeout_is_a_timeout(error: type[httpx.TimeoutException]) -> None:
    script = Script(error, ok_response())
    outcome, delays = get_link(script, max_retries=0)
    assert outcome == PollFailure(Reason.TIMEOUT, "no answer within 5s")
    assert (len(script.requests), delays) == (1, [])


def test_a_timeout_is_retried() -> None:
    script = Script(httpx.ReadTimeout, ok_response())
    outcome, delays = get_link(script)
    assert isinstance(outcome, LinkAnswer)
    assert delays == [0.375]


def test_a_slow_server_hits_the_overall_deadline() -> None:
    ended: list[str] = []

    async def slow(_: httpx.Request) -> httpx.Response:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            ended.append("cancelled")
            raise
        ended.append("answered")
        return ok_response()

    outcome, _ = get_link(slow, timeout=0.05, max_retries=0)
    assert outcome == PollFailure(Reason.TIMEOUT, "no answer within 0.05s")
    assert ended == ["cancelled"]  # dropped at the deadline, not awaited to its answer


def test_a_body_that_trickles_in_hits_the_overall_deadline() -> None:
    sent: list[int] = []

    async def trickle() -> AsyncIterator[bytes]:
        for n in range(100):
            await asyncio.sleep(0.02)  # each chunk is quick; the whole is not
            sent.append(n)
            yield b" "

    outcome, _ = get_link(
        lambda _: httpx.Response(200, content=trickle()), timeout=0.1, max_retries=0
    )
    assert outcome == PollFailure(Reason.TIMEOUT, "no answer within 0.1s")
    assert len(sent) < 100  # the reading stopped at the deadline, short of the body's end


# --- RateLimiter -----------------------------------------------------------------------------


class FakeClock:
    """A monotonic clock that only moves when someone sleeps on it (or the test moves it)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # let other waiters run, as a real sleep would


def starts_of(limiter: RateLimiter, clock: FakeClock, count: int) -> list[float]:
    """The clock's time at each of `count` concurrent acquisitions."""
    starts: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        starts.append(clock())

    async def scenario() -> None:
        await asyncio.gather(*(one() for _ in range(count)))

    asyncio.run(scenario())
    return starts


def most_starts_in_one_second(starts: list[float]) -> int:
    return max(sum(1 for t in starts if s <= t < s + 1.0) for s in starts)


@pytest.mark.parametrize("rate", [1, 3, 5, 8])
def test_the_limiter_never_allows_more_than_n_starts_in_any_second(rate: int) -> None:
    clock = FakeClock()
    starts = starts_of(RateLimiter(rate, clock=clock, sleep=clock.sleep), clock, 50)
    assert len(starts) == 50
    assert starts == sorted(starts)
    assert most_starts_in_one_second(starts) == rate
    # ...and it is not much slower than it must be: a burst of `rate`, then about `rate` a
    # second (a small safety margin on the window is allowed).
    assert starts[:rate] == [1000.0] * rate
    seconds_needed = (50 - 1) // rate
    assert seconds_needed <= starts[-1] - starts[0] <= seconds_needed * 1.1


def test_the_limiter_does_not_wait_when_starts_are_spread_out() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, clock=clock, sleep=clock.sleep)

    async def scenario() -> None:
        for _ in range(10):
            await limiter.acquire()
            clock.now += 0.6  # two starts per 1.2 s: under 2 per second

    asyncio.run(scenario())
    assert clock.sleeps == []


def test_a_fractional_rate_of_half_allows_one_start_every_two_seconds() -> None:
    clock = FakeClock()
    starts = starts_of(RateLimiter(0.5, clock=clock, sleep=clock.sleep), clock, 10)
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert len(gaps) == 9
    assert all(2.0 <= gap <= 2.2 for gap in gaps), gaps


# --- list_agents -----------------------------------------------------------------------------


def agent(agent_id: str, name: str = "", **extra: object) -> dict[str, object]:
    return {"agent_id": agent_id, "name": name, "created_at_unix_secs": 1, **extra}


def page(agents: list[dict[str, object]], next_cursor: str | None, has_more: bool) -> bytes:
    return json.dumps({"agents": agents, "next_cursor": next_cursor, "has_more": has_more}).encode()


def list_agents(handler: Handler) -> tuple[list[AgentSummary] | PollFailure, list[float]]:
    recorder = Recorder()

    async def scenario() -> list[AgentSummary] | PollFailure:
        client = make_client(handler, recorder)
        try:
            return await client.list_agents()
        finally:
            await client.aclose()

    return asyncio.run(scenario()), recorder.delays


class Pages:
    """The listing endpoint: a page per cursor; records each request's query."""

    def __init__(self, pages: dict[str | None, httpx.Response]) -> None:
        self.pages = pages
        self.queries: list[dict[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/convai/agents"
        assert request.headers["xi-api-key"] == API_KEY
        self.queries.append(dict(request.url.params))
        return self.pages[request.url.params.get("cursor")]


def test_the_listing_follows_next_cursor_while_has_more() -> None:
    pages = Pages(
        {
            None: httpx.Response(
                200, content=page([agent("a1", "one"), agent("a2", "two")], "c2", True)
            ),
            "c2": httpx.Response(200, content=page([agent("a3", "three")], "c3", True)),
            "c3": httpx.Response(200, content=page([agent("a4")], None, False)),
        }
    )
    listing, _ = list_agents(pages)
    assert isinstance(listing, list)
    assert [(a.agent_id, a.name) for a in listing] == [
        ("a1", "one"),
        ("a2", "two"),
        ("a3", "three"),
        ("a4", ""),
    ]
    assert pages.queries == [
        {"page_size": "100", "archived": "false"},
        {"page_size": "100", "archived": "false", "cursor": "c2"},
        {"page_size": "100", "archived": "false", "cursor": "c3"},
    ]


def test_the_listing_stops_when_has_more_is_false_even_with_a_cursor() -> None:
    pages = Pages({None: httpx.Response(200, content=page([agent("a1")], "c2", False))})
    listing, _ = list_agents(pages)
    assert isinstance(listing, list)
    assert [a.agent_id for a in listing] == ["a1"]
    assert len(pages.queries) == 1


def test_has_more_without_a_cursor_fails_the_listing() -> None:
    """The pages after it cannot be fetched: taken as complete, their agents were dropped."""
    pages = Pages({None: httpx.Response(200, content=page([agent("a1")], None, True))})
    listing, _ = list_agents(pages)
    assert listing == PollFailure(
        Reason.INVALID_RESPONSE, "the agent listing says has_more but gives no next_cursor", 200
    )
    assert len(pages.queries) == 1


def test_archived_agents_are_left_out() -> None:
    pages = Pages(
        {
            None: httpx.Response(
                200,
                content=page(
                    [agent("a1"), agent("old", archived=True), agent("a2", archived=False)],
                    None,
                    False,
                ),
            )
        }
    )
    listing, _ = list_agents(pages)
    assert isinstance(listing, list)
    assert [a.agent_id for a in listing] == ["a1", "a2"]


def test_a_failing_page_fails_the_whole_listing_after_retries() -> None:
    pages = Pages(
        {
            None: httpx.Response(200, content=page([agent("a1")], "c2", True)),
            "c2": httpx.Response(503),
        }
    )
    listing, delays = list_agents(pages)
    assert listing == PollFailure(Reason.SERVER_ERROR, "HTTP 503", 503)
    assert len(pages.queries) == 1 + 4
    assert delays == [0.375, 0.75, 1.5]


def test_an_unauthorized_listing_fails_at_once() -> None:
    pages = Pages({None: httpx.Response(401, content=error_body("missing_permissions"))})
    listing, delays = list_agents(pages)
    assert listing == PollFailure(Reason.UNAUTHORIZED, "HTTP 401 missing_permissions", 401)
    assert delays == []


@pytest.mark.parametrize("body", [b"not json", b'{"has_more": false}', b'{"agents": {}}'])
def test_a_listing_that_does_not_fit_is_an_invalid_response(body: bytes) -> None:
    listing, _ = list_agents(Pages({None: httpx.Response(200, content=body)}))
    assert listing == PollFailure(
        Reason.INVALID_RESPONSE, "the agent listing does not fit the schema", 200
    )


def test_a_row_that_does_not_fit_is_skipped_alone_and_a_null_name_is_empty() -> None:
    rows: list[object] = [
        agent("a1", "one"),
        {"agent_id": "a2", "name": None},
        {"agent_id": "a3", "name": 7},
        {"name": "no id"},
        None,
        agent("a4", "four", archived=None),
        agent("a5", "five"),
    ]
    body = json.dumps({"agents": rows, "has_more": False}).encode()
    with structlog.testing.capture_logs() as logged:
        listing, _ = list_agents(Pages({None: httpx.Response(200, content=body)}))
    assert isinstance(listing, list)
    assert [(a.agent_id, a.name) for a in listing] == [("a1", "one"), ("a2", ""), ("a5", "five")]
    # One line per listing, not per row (tests/unit/test_listing_rows.py).
    [skipped] = logged
    assert (skipped["event"], skipped["count"], skipped["rows"]) == (
        "discovery_rows_skipped",
        4,
        [2, 3, 4, 5],
    )
    assert skipped["fields"] == {"name": 1, "agent_id": 1, "the row": 1, "archived": 1}
    assert "no id" not in repr(logged)


def test_an_id_listed_twice_is_kept_once() -> None:
    pages = Pages(
        {
            None: httpx.Response(200, content=page([agent("a1", "one"), agent("a1")], "c2", True)),
            "c2": httpx.Response(
                200, content=page([agent("a2"), agent("a1", "again")], None, False)
            ),
        }
    )
    listing, _ = list_agents(pages)
    assert isinstance(listing, list)
    assert [(a.agent_id, a.name) for a in listing] == [("a1", "one"), ("a2", "")]


def test_a_repeated_cursor_ends_the_listing_as_invalid() -> None:
    """A cursor seen before would list the same pages again, for ever."""
    pages = Pages(
        {
            None: httpx.Response(200, content=page([agent("a1")], "c2", True)),
            "c2": httpx.Response(200, content=page([agent("a2")], "c3", True)),
            "c3": httpx.Response(200, content=page([agent("a3")], "c2", True)),
        }
    )
    listing, _ = list_agents(pages)
    assert listing == PollFailure(Reason.INVALID_RESPONSE, "the agent listing repeats a cursor")
    assert [q.get("cursor") for q in pages.queries] == [None, "c2", "c3"]


def test_more_agents_than_the_cap_fail_the_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api_module, "MAX_LISTED_AGENTS", 3)
    at_cap = Pages(
        {None: httpx.Response(200, content=page([agent(f"a{i}") for i in range(3)], None, False))}
    )
    listing, _ = list_agents(at_cap)
    assert isinstance(listing, list)
    assert len(listing) == 3
    # Duplicates and archived agents do not count; a fourth agent does.
    rows = [agent("a0"), agent("a0"), agent("x", archived=True), agent("a1"), agent("a2")]
    over = Pages(
        {
            None: httpx.Response(200, content=page(rows, "c2", True)),
            "c2": httpx.Response(200, content=page([agent("a3")], None, False)),
        }
    )
    listing, _ = list_agents(over)
    assert listing == PollFailure(
        Reason.INVALID_RESPONSE, "the agent listing has more than 3 agents"
    )


# --- whatever the body, parse_link_body answers ----------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=25,
)
tokens = (
    st.none()
    | json_values
    | st.fixed_dictionaries(
        {"conversation_token": st.text(max_size=20) | json_values},
        optional={
            "expiration_time_unix_secs": st.none() | st.integers() | json_values,
            "agent_id": json_values,
            "purpose": json_values,
        },
    )
)
answers = st.fixed_dictionaries(
    {}, optional={"agent_id": st.text(max_size=10) | json_values, "token": tokens}
)


def assert_answers(outcome: object) -> None:
    assert isinstance(outcome, LinkAnswer | PollFailure)
    if isinstance(outcome, PollFailure):
        assert (outcome.reason, outcome.status) == (Reason.INVALID_RESPONSE, 200)


@settings(max_examples=200, deadline=None)
@given(st.binary())
@example(b"\xff")
@example(b"[" * 100_000)
def test_any_bytes_give_an_answer_or_a_failure(body: bytes) -> None:
    assert_answers(parse_link_body(body))


@settings(max_examples=200, deadline=None)
@given(answers | json_values)
@example(
    {"agent_id": "a", "token": {"conversation_token": "t", "expiration_time_unix_secs": 10**400}}
)
def test_any_json_value_gives_an_answer_or_a_failure(value: object) -> None:
    assert_answers(parse_link_body(json.dumps(value).encode()))


def test_a_replaced_client_closes_only_once_its_requests_are_done() -> None:
    async def scenario() -> tuple[PollOutcome, bool]:
        release = asyncio.Event()

        async def handler(request: httpx.Request) -> httpx.Response:
            await release.wait()
            return httpx.Response(200, json={"agent_id": "agent_1", "token": None})

        client = make_client(handler, Recorder())
        poll = asyncio.create_task(client.get_link("agent_1"))
        await asyncio.sleep(0)  # let the poll start
        closing = asyncio.create_task(client.aclose_when_idle())
        await asyncio.sleep(0.01)
        closed_early = closing.done()
        release.set()
        outcome = await poll
        await closing
        return outcome, closed_early

    outcome, closed_early = asyncio.run(scenario())
    assert not closed_early
    assert isinstance(outcome, LinkAnswer)
