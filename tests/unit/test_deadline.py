"""The client judges by its deadline: a retry whose wait would outlast it is not started,
and a request still going at the deadline ends as `timeout`. Narrow client tests, so HTTP
is `httpx.MockTransport`; the clock is the fake loop's."""

from __future__ import annotations

import asyncio

import httpx

from monitor.elevenlabs.client import ClientSettings, ElevenLabsClient
from monitor.model import PollFailure, PollOutcome, Reason
from tests.fakeclock import FakeClockLoop

SETTINGS = ClientSettings(
    base_url="http://127.0.0.1:9",
    timeout=5,
    max_concurrency=4,
    max_requests_per_second=100,
    max_retries=3,
)


def poll(handler: httpx.MockTransport, deadline_in: float) -> tuple[PollOutcome, float]:
    """One poll with a deadline `deadline_in` seconds ahead; the outcome and the time taken."""
    loop = FakeClockLoop()

    async def main() -> tuple[PollOutcome, float]:
        client = ElevenLabsClient(SETTINGS, "sk_deadline_test", transport=handler)
        try:
            start = loop.time()
            outcome = await client.get_link("bot", deadline=start + deadline_in)
            return outcome, loop.time() - start
        finally:
            await client.aclose()

    try:
        return loop.run(main())
    finally:
        loop.close()


def test_a_retry_after_longer_than_the_time_left_is_rate_limited_now() -> None:
    requests: list[httpx.Request] = []

    def busy(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(429, headers={"retry-after": "30"}, json={"detail": {}})

    outcome, took = poll(httpx.MockTransport(busy), deadline_in=1.8)
    assert isinstance(outcome, PollFailure)
    assert outcome.reason is Reason.RATE_LIMITED
    assert len(requests) == 1
    assert took < 0.01


def test_a_retry_that_fits_is_still_made() -> None:
    answers = iter([httpx.Response(503, headers={"retry-after": "1"}), None])

    def flaky(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        return answer or httpx.Response(200, json={"agent_id": "bot", "token": None})

    outcome, took = poll(httpx.MockTransport(flaky), deadline_in=1.8)
    assert not isinstance(outcome, PollFailure)
    assert 1.0 <= took < 1.1


def test_an_answer_slower_than_the_deadline_is_a_timeout_at_the_deadline() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(4)  # within the 5 s timeout, past the deadline
        return httpx.Response(200, json={"agent_id": "bot", "token": None})

    outcome, took = poll(httpx.MockTransport(slow), deadline_in=1.8)
    assert outcome == PollFailure(Reason.TIMEOUT, "no answer before the cycle's deadline")
    assert abs(took - 1.8) < 0.01
