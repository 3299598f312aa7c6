"""The lean request path: no cookie jar, requests built without the client's merge, one
deadline per attempt, Retry-After read only where it means something."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from monitor.elevenlabs.client import ClientSettings, ElevenLabsClient
from monitor.model import LinkAnswer, PollFailure, PollOutcome, Reason

API_KEY = "sk_request_path_0123456789abcdef0123456789abcdef"
BODY = json.dumps({"agent_id": "a", "token": None}).encode()


def client(handler: httpx.MockTransport, base_url: str, timeout: float = 5.0) -> ElevenLabsClient:
    settings = ClientSettings(
        base_url=base_url,
        timeout=timeout,
        max_concurrency=2,
        max_requests_per_second=1000.0,
        max_retries=0,
    )
    return ElevenLabsClient(settings, API_KEY, transport=handler)


async def polls(
    api: ElevenLabsClient, *ids: str, deadline: float | None = None
) -> list[PollOutcome]:
    try:
        return [await api.get_link(agent_id, deadline) for agent_id in ids]
    finally:
        await api.aclose()


def test_a_cookie_the_api_sets_is_never_sent_back() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers={"set-cookie": "session=abc; Path=/"}, content=BODY)

    api = client(httpx.MockTransport(answer), "https://api.example.test")
    outcomes = asyncio.run(polls(api, "a", "a"))
    assert all(isinstance(o, LinkAnswer) for o in outcomes)
    assert [r.headers.get("cookie") for r in seen] == [None, None]
    assert not api._http.cookies


def test_the_request_keeps_the_base_urls_path_and_the_client_headers() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=BODY)

    api = client(httpx.MockTransport(answer), "https://gw.example.test:8443/eleven/")
    asyncio.run(polls(api, "a/b?c"))
    (request,) = seen
    # The id stays one path segment under the base URL's own path, as httpx's merge made it.
    assert str(request.url) == "https://gw.example.test:8443/eleven/v1/convai/agents/a%2Fb%3Fc/link"
    assert request.headers["xi-api-key"] == API_KEY
    assert request.headers["accept-encoding"] == "identity"
    assert request.headers["host"] == "gw.example.test:8443"
    # No transport timeouts: the attempt's own deadline covers the whole exchange.
    assert set(request.extensions["timeout"].values()) == {None}


@pytest.mark.parametrize(
    ("timeout", "deadline_in", "detail"),
    [
        (0.05, 10.0, "no answer within 0.05s"),  # the request's own timeout comes first
        (10.0, 0.05, "no answer before the cycle's deadline"),  # the cycle's deadline does
        (0.05, None, "no answer within 0.05s"),  # no deadline at all (a listing page)
    ],
)
def test_one_deadline_per_attempt_names_whichever_came_first(
    timeout: float, deadline_in: float | None, detail: str
) -> None:
    async def slow(_: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, content=BODY)

    async def run() -> list[PollOutcome]:
        api = client(httpx.MockTransport(slow), "https://api.example.test", timeout=timeout)
        now = asyncio.get_running_loop().time()
        return await polls(api, "a", deadline=None if deadline_in is None else now + deadline_in)

    assert asyncio.run(run()) == [PollFailure(Reason.TIMEOUT, detail)]


def test_retry_after_on_a_good_answer_is_ignored_and_on_a_429_kept() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/busy/link"):
            return httpx.Response(429, headers={"retry-after": "7"}, content=b"{}")
        return httpx.Response(200, headers={"retry-after": "not a date"}, content=BODY)

    api = client(httpx.MockTransport(answer), "https://api.example.test")
    good, busy = asyncio.run(polls(api, "a", "busy"))
    assert isinstance(good, LinkAnswer)
    assert isinstance(busy, PollFailure)
    assert busy.reason is Reason.RATE_LIMITED
    assert busy.retry_after == 7.0
