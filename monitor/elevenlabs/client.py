"""The ElevenLabs API client: one workspace's requests, their limits and retries.

With transport.py, the only module that imports httpx, so that a change of HTTP library stays
in these two.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import random
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import aiohttp
import httpx

from monitor import __version__
from monitor.elevenlabs.answers import (
    RowTally,
    classify_status,
    listed_agent,
    parse_link_body,
    parse_list_body,
    parse_retry_after,
)
from monitor.elevenlabs.limiter import RateLimiter
from monitor.elevenlabs.transport import aiohttp_transport, transport_failure
from monitor.logs import redact
from monitor.model import (
    RETRYABLE,
    AgentSummary,
    ListingFilter,
    PollFailure,
    PollOutcome,
    Reason,
)

# The listing's bounds. 50,000 agents in one workspace is far past any real one, and at
# about 1 KiB of memory each (300,000 listed agents took 317 MiB) still a bounded share.
MAX_LISTED_AGENTS = 50_000
MAX_LISTING_PAGES = 10_000  # a bound even if the API's cursors never end

USER_AGENT = f"elevenlabs-link-monitor/{__version__} (+https://github.com/elevenlabs-link-monitor)"
_T = TypeVar("_T")
Params = dict[str, str | list[str]]  # a list: the parameter repeated (the listing's `tags`)
MAX_BODY_BYTES = (
    256 * 1024
)  # a link answer is well under 1 KiB; anything huge is an attack or a bug
MAX_RETRY_AFTER = 60.0  # the official SDK's cap; longer waits belong to the next cycle
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0


@dataclass(frozen=True, slots=True)
class ClientSettings:
    base_url: str
    timeout: float
    max_concurrency: int
    max_requests_per_second: float
    max_retries: int
    # Egress: an explicit proxy (it may hold a password: no repr) and an extra CA bundle.
    proxy: str | None = dataclasses.field(default=None, repr=False)
    ca_file: str | None = None


class _NoCookies(httpx.Cookies):
    """A jar that keeps nothing: the API sets no cookie the monitor needs, and httpx's
    extraction (a urllib request and response built around every answer) was 7% of the
    daemon's CPU."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _HttpClient(httpx.AsyncClient):
    """httpx's client without a cookie jar."""

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, _: object) -> None:
        return None


_NO_COOKIES = _NoCookies()


class ElevenLabsClient:
    """One workspace's client: one reused connection pool, its own limits and retries."""

    def __init__(
        self,
        settings: ClientSettings,
        api_key: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        on_request: Callable[[float], None] = lambda _: None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.settings = settings
        self._http = _HttpClient(
            base_url=settings.base_url,
            headers={
                "xi-api-key": api_key,
                "user-agent": USER_AGENT,
                "accept": "application/json",
                # A compressed answer could inflate far past the size cap in one chunk.
                "accept-encoding": "identity",
            },
            timeout=None,  # see _extensions
            transport=transport
            or aiohttp_transport(
                settings.max_concurrency,
                tls=settings.base_url.startswith("https:"),
                base_url=settings.base_url,
                proxy=settings.proxy,
                ca_file=settings.ca_file,
            ),
            follow_redirects=False,
            trust_env=False,
        )
        # What AsyncClient.build_request would merge into every request, merged once: its URL
        # parse and merge was 20% of the daemon's CPU. The base URL keeps its own path.
        self._prefix = str(self._http.base_url).removesuffix("/")
        self._headers = self._http.headers
        # No timeouts for the transport: the attempt's own deadline (`_limited`) covers the
        # connection, the request and the whole body, where aiohttp's would re-arm a timer on
        # every chunk read (2% of the daemon's CPU).
        self._extensions: dict[str, object] = {"timeout": httpx.Timeout(None).as_dict()}
        self._semaphore = asyncio.Semaphore(settings.max_concurrency)
        # Shared with the clients this one replaces or is replaced by (see RateLimiter).
        self._limiter = limiter or RateLimiter(settings.max_requests_per_second, sleep=sleep)
        self._on_request = on_request
        self._sleep = sleep
        self._rng = rng
        self._holds = 0  # requests in flight plus leases
        self._idle = asyncio.Event()
        self._idle.set()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def aclose_when_idle(self) -> None:
        """Close once no request is in flight and no lease holds the client (a client
        replaced by a reload)."""
        while self._holds:
            self._idle.clear()
            await self._idle.wait()
        await self.aclose()

    @contextlib.asynccontextmanager
    async def lease(self) -> AsyncIterator[ElevenLabsClient]:
        """Keep the client open across several requests (a paginated listing): between two
        requests it is idle, and a replaced client must not be closed there."""
        self._hold()
        try:
            yield self
        finally:
            self._release()

    def _hold(self) -> None:
        self._holds += 1
        self._idle.clear()

    def _release(self) -> None:
        self._holds -= 1
        if not self._holds:
            self._idle.set()

    async def get_link(self, agent_id: str, deadline: float | None = None) -> PollOutcome:
        """The agent's link, retried as configured; failures are returned, not raised.

        `deadline` (event-loop time) is when a verdict is due: a request is cut there and a
        retry whose wait would outlast it is not started, the last failure being the verdict.
        """
        parse = functools.partial(parse_link_body, agent_id=agent_id)
        outcome = await self._with_retries(
            functools.partial(self._get, _link_path(agent_id), {}, parse, deadline), deadline
        )
        return _redacted(outcome)

    async def list_agents(
        self, query: ListingFilter | None = None, *, archived: bool = False
    ) -> list[AgentSummary] | PollFailure:
        """Every agent the key can see, all pages, live ones only (or, with `archived`, the
        archived ones only: the exposure sweep, a listing of its own); a row that does
        not fit the schema is skipped, not the whole listing, and a name is cut to 256
        characters: both counted, and logged in one line each per listing (never per row).
        With `query`, what the API filters is sent with each page and the rest is checked
        on each row as it comes (only the agents kept count towards MAX_LISTED_AGENTS).

        Bounded whatever the API answers: an id listed twice is kept once, a cursor seen
        before ends the listing, and a page of more than 1,000 rows, a `has_more` without a
        `next_cursor` or more than MAX_LISTED_AGENTS agents fail it; each failure is
        `invalid_response`, and the caller keeps its last good list. The caller bounds its
        time (Discovery's deadline): cancelled, the listing still logs what it counted.
        """
        tally = RowTally()
        try:
            return await self._list_agents(tally, query or ListingFilter(), archived)
        finally:
            tally.log()

    async def _list_agents(
        self, tally: RowTally, query: ListingFilter, archived: bool
    ) -> list[AgentSummary] | PollFailure:
        agents: dict[str, AgentSummary] = {}
        cursors: set[bytes] = set()  # digests: a cursor is upstream text of any length
        cursor: str | None = None
        row = 0
        async with self.lease():
            for _ in range(MAX_LISTING_PAGES):
                # archived=false is the API's default, said outright: the listing watches live
                # agents; the sweep of archived ones is a listing of its own.
                params: Params = {
                    "page_size": "100",
                    "archived": "true" if archived else "false",
                    **query.params(),
                }
                if cursor:
                    params["cursor"] = cursor
                page = await self._with_retries(
                    functools.partial(self._get, "/v1/convai/agents", params, parse_list_body)
                )
                if isinstance(page, PollFailure):
                    return _redacted(page)
                for raw in page.answer.agents:
                    agent = listed_agent(raw, row, tally)
                    row += 1
                    # The API's filter said again: a row on the wrong side is left out.
                    if agent is None or agent.archived != archived or agent.agent_id in agents:
                        continue
                    if not query.keeps(agent):
                        continue
                    if agent.tags:
                        agent = dataclasses.replace(agent, tags=query.kept_tags(agent.tags))
                    if len(agents) == MAX_LISTED_AGENTS:
                        return PollFailure(
                            Reason.INVALID_RESPONSE,
                            f"the agent listing has more than {MAX_LISTED_AGENTS:,} agents",
                        )
                    agents[agent.agent_id] = agent
                if not page.answer.has_more or not page.answer.next_cursor:
                    return list(agents.values())
                cursor = page.answer.next_cursor
                seen = hashlib.blake2b(cursor.encode(), digest_size=16).digest()
                if seen in cursors:
                    return PollFailure(
                        Reason.INVALID_RESPONSE, "the agent listing repeats a cursor"
                    )
                cursors.add(seen)
                # A page is read at one go (at most 1,000 rows): let the loop run others
                # (a scrape, /healthz) before the next, even if no request had to wait.
                await asyncio.sleep(0)
        return PollFailure(Reason.INVALID_RESPONSE, "the agent listing never ends")

    async def _with_retries(
        self, attempt: Callable[[], Awaitable[_T | PollFailure]], deadline: float | None = None
    ) -> _T | PollFailure:
        self._hold()
        try:
            return await self._attempts(attempt, deadline)
        finally:
            self._release()

    async def _attempts(
        self, attempt: Callable[[], Awaitable[_T | PollFailure]], deadline: float | None
    ) -> _T | PollFailure:
        outcome = await attempt()
        for retry in range(self.settings.max_retries):
            if not isinstance(outcome, PollFailure) or outcome.reason not in RETRYABLE:
                return outcome
            wait = self._backoff(retry, outcome.retry_after)
            if deadline is not None and asyncio.get_running_loop().time() + wait >= deadline:
                # Waiting would outlast the deadline (a long Retry-After): judge now.
                return outcome
            await self._sleep(wait)
            outcome = await attempt()
        return outcome

    def _backoff(self, retry: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER)
        ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2.0**retry)
        # "Equal jitter": never less than half the ceiling, so retries stay spaced out.
        return ceiling / 2 + self._rng() * ceiling / 2

    async def _get(
        self,
        path: str,
        params: Params,
        parse: Callable[[bytes], _T | PollFailure],
        deadline: float | None = None,
    ) -> _T | PollFailure:
        try:
            # One deadline per attempt: the cycle's while waiting for a slot, then moved
            # to the request's own timeout if that comes first.
            async with asyncio.timeout_at(deadline) as scope:
                return await self._limited(path, params, parse, scope)
        except TimeoutError:
            if scope.when() != deadline:
                return PollFailure(Reason.TIMEOUT, f"no answer within {self.settings.timeout:g}s")
            return PollFailure(Reason.TIMEOUT, "no answer before the cycle's deadline")

    async def _limited(
        self,
        path: str,
        params: Params,
        parse: Callable[[bytes], _T | PollFailure],
        scope: asyncio.Timeout,
    ) -> _T | PollFailure:
        async with self._semaphore:
            # The rate slot is taken last, right before the request: taken before waiting
            # for a concurrency slot, queued requests would all start at once when freed.
            slot = await self._limiter.acquire()
            started = time.perf_counter()
            # httpx's read timeout is per chunk; this limit covers the whole exchange.
            limit = asyncio.get_running_loop().time() + self.settings.timeout
            deadline = scope.when()
            if deadline is None or limit < deadline:
                scope.reschedule(limit)
            try:
                return await self._exchange(path, params, parse)
            except (httpx.HTTPError, aiohttp.ClientError, OSError, RuntimeError) as exc:
                # Never the exception text: httpx exceptions carry the request and its headers.
                # Some aiohttp errors arrive unmapped, and a closed client raises RuntimeError.
                reason, detail = transport_failure(exc)
                if reason is Reason.TIMEOUT:
                    detail = f"no answer within {self.settings.timeout:g}s"
                return PollFailure(reason, detail)
            finally:
                self._limiter.finished(slot)
                self._on_request(time.perf_counter() - started)

    async def _exchange(
        self, path: str, params: Params, parse: Callable[[bytes], _T | PollFailure]
    ) -> _T | PollFailure:
        request = httpx.Request(
            "GET",
            self._prefix + path,
            params=params or None,
            headers=self._headers,
            extensions=self._extensions,
        )
        response = await self._http.send(request, stream=True)
        try:
            return await self._read(response, parse)
        finally:
            await response.aclose()

    async def _read(
        self, response: httpx.Response, parse: Callable[[bytes], _T | PollFailure]
    ) -> _T | PollFailure:
        status = response.status_code
        if not _identity(response.headers.get_list("content-encoding")):
            # We asked for identity. Inflating layer after layer is how a 2 KB answer
            # becomes gigabytes, so a compressed answer is refused unread.
            if status != 200:
                return classify_status(status, b"", _retry_after(response))
            return PollFailure(
                Reason.INVALID_RESPONSE,
                "the answer is compressed (Content-Encoding), though only identity was accepted",
                status,
            )
        body = bytearray()
        # Identity checked above: the raw bytes are the body (no decoder, no re-chunking). A
        # transport that read the answer already (httpx.MockTransport does) left it whole.
        chunks = _whole(response.content) if response.is_stream_consumed else response.aiter_raw()
        async for chunk in chunks:
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                if status != 200:
                    # A proxy's big error page: the status says what happened.
                    return classify_status(status, b"", _retry_after(response))
                return PollFailure(
                    Reason.INVALID_RESPONSE,
                    f"the answer is larger than {MAX_BODY_BYTES // 1024} KiB",
                    status,
                )
        if status != 200:
            return classify_status(status, bytes(body), _retry_after(response))
        return parse(bytes(body))


def _link_path(agent_id: str) -> str:
    # A discovered id comes from the API unchecked: keep it one path segment.
    return f"/v1/convai/agents/{urllib.parse.quote(agent_id, safe='')}/link"


async def _whole(content: bytes) -> AsyncIterator[bytes]:
    yield content


def _retry_after(response: httpx.Response) -> float | None:
    """Read only from a failed answer: a 200's Retry-After means nothing to a poll."""
    return parse_retry_after(response.headers.get("retry-after"), time.time())


def _redacted(outcome: _T) -> _T:
    """A failure's detail redacted like a log line before anything stores it: it may carry
    what the upstream said, and an upstream can echo the key."""
    if isinstance(outcome, PollFailure):
        return dataclasses.replace(outcome, detail=redact(outcome.detail))
    return outcome


def _identity(codings: list[str]) -> bool:
    """Whether a Content-Encoding header (every value of it) leaves the body as it is."""
    return all(
        part.strip().lower() in ("", "identity") for value in codings for part in value.split(",")
    )
