"""The ElevenLabs API client: limits, retries, failure reasons.

The only module that imports httpx, so that a change of HTTP library stays here.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import email.utils
import functools
import hashlib
import json
import random
import re
import ssl
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import httpx
import structlog
from httpx_aiohttp import AiohttpTransport
from pydantic import ValidationError

from monitor import __version__
from monitor.evaluate import TOKEN_MISSING, Kind, Observation
from monitor.logs import redact
from monitor.model import (
    EXPIRY_RANGE_PROBLEM,
    RETRYABLE,
    AgentLinkResponse,
    AgentListResponse,
    AgentSummary,
    LinkAnswer,
    PollFailure,
    PollOutcome,
    Reason,
)

log = structlog.get_logger("monitor")

# The listing's bounds. 50,000 agents in one workspace is far past any real one, and at
# about 1 KiB of memory each (300,000 listed agents took 317 MiB) still a bounded share.
MAX_LISTED_AGENTS = 50_000
MAX_LISTING_PAGES = 10_000  # a bound even if the API's cursors never end

USER_AGENT = f"elevenlabs-link-monitor/{__version__} (+https://github.com/elevenlabs-link-monitor)"
_T = TypeVar("_T")
MAX_BODY_BYTES = (
    256 * 1024
)  # a link answer is well under 1 KiB; anything huge is an attack or a bug
MAX_RETRY_AFTER = 60.0  # the official SDK's cap; longer waits belong to the next cycle
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0


def reduce_answer(answer: AgentLinkResponse) -> LinkAnswer:
    token = answer.token
    if token is None:
        return LinkAnswer(TOKEN_MISSING, None)
    expiry = token.expiration_time_unix_secs
    digest = hashlib.blake2b(
        f"{token.conversation_token.get_secret_value()}\0{expiry}".encode(), digest_size=12
    ).hexdigest()
    return LinkAnswer(Observation(Kind.LINK, None if expiry is None else float(expiry)), digest)


def parse_link_body(body: bytes, agent_id: str | None = None) -> PollOutcome:
    """A 200 body to an answer, or an `invalid_response` failure naming the field; never
    raises. With `agent_id`, an answer about another agent does not fit either."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return PollFailure(Reason.INVALID_RESPONSE, "the body is not JSON", 200)
    try:
        answer = AgentLinkResponse.model_validate(data)
    except ValidationError as exc:
        return PollFailure(Reason.INVALID_RESPONSE, _schema_detail(exc), 200)
    except RecursionError:
        return PollFailure(Reason.INVALID_RESPONSE, "the answer is nested too deeply", 200)
    if agent_id is not None:
        token_agent = answer.token.agent_id if answer.token is not None else None
        for field, said in (("agent_id", answer.agent_id), ("token.agent_id", token_agent)):
            if said is not None and said != agent_id:
                return PollFailure(
                    Reason.INVALID_RESPONSE,
                    f"the answer does not fit the schema at {field}: not the agent asked for",
                    200,
                )
    return reduce_answer(answer)


def _schema_detail(exc: ValidationError) -> str:
    """Which fields do not fit, and why where the reason is ours (never the value itself)."""
    fields: dict[str, str] = {}
    for error in exc.errors(include_url=False, include_input=False):
        field = ".".join(map(str, error["loc"])) or "body"
        own = error["type"] == "value_error" and EXPIRY_RANGE_PROBLEM in error["msg"]
        fields[field] = f"{field}: {EXPIRY_RANGE_PROBLEM}" if own else fields.get(field, field)
    return f"the answer does not fit the schema at {', '.join(sorted(fields.values()))}"


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a `Retry-After` header (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def _error_code(body: bytes) -> str:
    """The API's error code (`invalid_api_key`, `missing_permissions`...), read defensively."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return ""
    detail = data.get("detail") if isinstance(data, dict) else None
    candidates: list[Any] = []
    if isinstance(detail, dict):
        candidates = [detail.get("status"), detail.get("code"), detail.get("type")]
    elif isinstance(detail, list) and detail and isinstance(detail[0], dict):
        candidates = [detail[0].get("type")]
    for candidate in candidates:
        if (
            isinstance(candidate, str)
            and len(candidate) <= 64
            and _CODE.fullmatch(candidate)
            and not candidate.startswith("sk_")  # the API key's own prefix
        ):
            return candidate
    return ""


# What an error code looks like (`invalid_api_key`, `too_many_concurrent_requests`,
# `value_error.missing`): short lowercase words, no digits. Free text, an echoed API key
# (`sk_...` has digits) or an echoed conversation token (long random runs, digits) does not
# fit, so nothing an upstream echoes back reaches a log line, the page or `check`.
_CODE = re.compile(r"[a-z]{1,12}(?:[_.][a-z]{1,12}){0,7}")


def classify_status(status: int, body: bytes, retry_after: float | None) -> PollFailure:
    code = _error_code(body)
    detail = f"HTTP {status}" + (f" {code}" if code else "")
    if status in (401, 403):
        reason = Reason.UNAUTHORIZED
    elif status == 404:
        reason = Reason.NOT_FOUND
    elif status == 429:
        reason = Reason.RATE_LIMITED
    elif status >= 500:
        reason = Reason.SERVER_ERROR
    elif 400 <= status < 500:
        reason = Reason.CLIENT_ERROR
    else:
        reason = Reason.INVALID_RESPONSE
    return PollFailure(reason, detail, status, retry_after if reason in RETRYABLE else None)


# --- limits -----------------------------------------------------------------------------------


# Requests can reach the server closer together than they left; this margin keeps the
# limit true where it counts, at the API.
RATE_WINDOW_MARGIN = 0.05


class RateLimiter:
    """At most `rate` request starts in any one-second window (a sliding log, exact).

    Owned by the workspace, not by a client: a client replaced by a reload or a rotated key
    takes the same limiter over, so the window stays true across the replacement.
    """

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._starts: collections.deque[_Slot] = collections.deque()
        self.retune(rate)
        self._lock = asyncio.Lock()
        # The event loop's clock by default: it is the one asyncio.sleep waits on.
        self._clock = clock or (lambda: asyncio.get_running_loop().time())
        self._sleep = sleep

    @property
    def rate(self) -> float:
        return self._rate

    def retune(self, rate: float) -> None:
        """A new rate that keeps the starts already made: they still count in their window."""
        self._rate = rate
        self._size = max(1, int(rate))
        # Below 1/s, one start per 1/rate seconds.
        self._window = max(1.0, self._size / rate) + RATE_WINDOW_MARGIN
        self._starts = collections.deque(self._starts, maxlen=self._size)

    async def acquire(self) -> _Slot:
        """Wait for a slot; hand it to `finished` when the answer is in."""
        async with self._lock:
            while len(self._starts) == self._size:
                wait = self._starts[0].at + self._window - self._clock()
                if wait <= 0:
                    break
                await self._sleep(wait)
            slot = _Slot(self._clock())
            self._starts.append(slot)
            return slot

    def finished(self, slot: _Slot) -> None:
        """The request surely reached the server by the time its answer is in: count it from
        then. A first request that spends 60 ms connecting would otherwise let the window's
        next request arrive less than a second after it."""
        slot.at = max(slot.at, self._clock())


class _Slot:
    __slots__ = ("at",)

    def __init__(self, at: float) -> None:
        self.at = at


# --- the client -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientSettings:
    base_url: str
    timeout: float
    max_concurrency: int
    max_requests_per_second: float
    max_retries: int


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
        self._http = httpx.AsyncClient(
            base_url=settings.base_url,
            headers={
                "xi-api-key": api_key,
                "user-agent": USER_AGENT,
                "accept": "application/json",
                # A compressed answer could inflate far past the size cap in one chunk.
                "accept-encoding": "identity",
            },
            timeout=httpx.Timeout(settings.timeout),
            transport=transport
            or _aiohttp_transport(
                settings.max_concurrency, tls=settings.base_url.startswith("https:")
            ),
            follow_redirects=False,
            trust_env=False,
        )
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
        # A discovered id comes from the API unchecked: keep it one path segment.
        path = f"/v1/convai/agents/{urllib.parse.quote(agent_id, safe='')}/link"
        parse = functools.partial(parse_link_body, agent_id=agent_id)
        outcome = await self._with_retries(
            functools.partial(self._get, path, {}, parse, deadline), deadline
        )
        return _redacted(outcome)

    async def list_agents(self) -> list[AgentSummary] | PollFailure:
        """Every agent the key can see, all pages, archived ones left out; a row that does
        not fit the schema is skipped (logged), not the whole listing.

        Bounded whatever the API answers: an id listed twice is kept once, a cursor seen
        before ends the listing, and more than MAX_LISTED_AGENTS agents fail it; each
        failure is `invalid_response`, and the caller keeps its last good list.
        """
        agents: dict[str, AgentSummary] = {}
        cursors: set[bytes] = set()  # digests: a cursor is upstream text of any length
        cursor: str | None = None
        row = 0
        async with self.lease():
            for _ in range(MAX_LISTING_PAGES):
                params = {"page_size": "100"} | ({"cursor": cursor} if cursor else {})
                page = await self._with_retries(
                    functools.partial(self._get, "/v1/convai/agents", params, _parse_list_body)
                )
                if isinstance(page, PollFailure):
                    return _redacted(page)
                for raw in page.answer.agents:
                    agent = _listed_agent(raw, row)
                    row += 1
                    if agent is None or agent.archived or agent.agent_id in agents:
                        continue
                    if len(agents) == MAX_LISTED_AGENTS:
                        return PollFailure(
                            Reason.INVALID_RESPONSE,
                            f"the agent listing has more than {MAX_LISTED_AGENTS:,} agents",
                        )
                    # Names reach the status page and check: redacted like every upstream text.
                    agents[agent.agent_id] = agent.model_copy(update={"name": redact(agent.name)})
                if not page.answer.has_more or not page.answer.next_cursor:
                    return list(agents.values())
                cursor = page.answer.next_cursor
                seen = hashlib.blake2b(cursor.encode(), digest_size=16).digest()
                if seen in cursors:
                    return PollFailure(
                        Reason.INVALID_RESPONSE, "the agent listing repeats a cursor"
                    )
                cursors.add(seen)
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
        params: dict[str, str],
        parse: Callable[[bytes], _T | PollFailure],
        deadline: float | None = None,
    ) -> _T | PollFailure:
        try:
            async with asyncio.timeout_at(deadline):
                return await self._limited(path, params, parse)
        except TimeoutError:
            return PollFailure(Reason.TIMEOUT, "no answer before the cycle's deadline")

    async def _limited(
        self, path: str, params: dict[str, str], parse: Callable[[bytes], _T | PollFailure]
    ) -> _T | PollFailure:
        async with self._semaphore:
            # The rate slot is taken last, right before the request: taken before waiting
            # for a concurrency slot, queued requests would all start at once when freed.
            slot = await self._limiter.acquire()
            started = time.perf_counter()
            try:
                # httpx's read timeout is per chunk; the deadline covers the whole exchange.
                async with asyncio.timeout(self.settings.timeout):
                    return await self._exchange(path, params, parse)
            except TimeoutError:
                return PollFailure(Reason.TIMEOUT, f"no answer within {self.settings.timeout:g}s")
            except (httpx.HTTPError, aiohttp.ClientError, OSError, RuntimeError) as exc:
                # Never the exception text: httpx exceptions carry the request and its headers.
                # Some aiohttp errors arrive unmapped, and a closed client raises RuntimeError.
                reason, detail = _transport_failure(exc)
                if reason is Reason.TIMEOUT:
                    detail = f"no answer within {self.settings.timeout:g}s"
                return PollFailure(reason, detail)
            finally:
                self._limiter.finished(slot)
                self._on_request(time.perf_counter() - started)

    async def _exchange(
        self, path: str, params: dict[str, str], parse: Callable[[bytes], _T | PollFailure]
    ) -> _T | PollFailure:
        async with self._http.stream("GET", path, params=params) as response:
            retry_after = parse_retry_after(response.headers.get("retry-after"), time.time())
            if not _identity(response.headers.get_list("content-encoding")):
                # We asked for identity. Inflating layer after layer is how a 2 KB answer
                # becomes gigabytes, so a compressed answer is refused unread.
                if response.status_code != 200:
                    return classify_status(response.status_code, b"", retry_after)
                return PollFailure(
                    Reason.INVALID_RESPONSE,
                    "the answer is compressed (Content-Encoding), though only identity was "
                    "accepted",
                    response.status_code,
                )
            body = bytearray()
            # With identity checked above, httpx's decoder passes the bytes through as they are.
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    if response.status_code != 200:
                        # A proxy's big error page: the status says what happened.
                        return classify_status(response.status_code, b"", retry_after)
                    return PollFailure(
                        Reason.INVALID_RESPONSE,
                        f"the answer is larger than {MAX_BODY_BYTES // 1024} KiB",
                        response.status_code,
                    )
            if response.status_code != 200:
                return classify_status(response.status_code, bytes(body), retry_after)
            return parse(bytes(body))


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


@dataclass(frozen=True, slots=True)
class _ListPage:
    answer: AgentListResponse


def _parse_list_body(body: bytes) -> _ListPage | PollFailure:
    try:
        return _ListPage(AgentListResponse.model_validate_json(body))
    except ValidationError:
        return PollFailure(
            Reason.INVALID_RESPONSE, "the agent listing does not fit the schema", 200
        )


def _listed_agent(row: object, index: int) -> AgentSummary | None:
    """One row of the listing, or None (logged) when it does not fit the schema."""
    try:
        return AgentSummary.model_validate(row)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False, include_context=False)[0]
        field = ".".join(str(part) for part in error["loc"]) or "the row"
        # Its index and field, never its content: upstream text that may carry a secret.
        log.warning(
            "discovered_agent_skipped",
            reason=f"listing row {index}: {field}: {error['msg']}",
            row=index,
            field=field,
        )
        return None


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's verification (certifi's CAs), shared by every client: each load of the bundle
    holds about 0.8 MiB, and a reload or a new workspace would load it again."""
    return httpx.create_ssl_context()


def _aiohttp_transport(connections: int, *, tls: bool) -> httpx.AsyncBaseTransport:
    """httpx's API over aiohttp's connection pool.

    Measured here against the simulated API (20 ms, 64 in flight): httpx's own pool cost
    4.3 ms of CPU per request, mostly in httpcore's pool bookkeeping; this transport 0.4 ms.
    A plain-HTTP base URL (a stand-in, a proxy on the node) loads no CA bundle: with redirects
    off nothing else is fetched, and its context trusts no certificate at all.
    """
    context = _tls_context() if tls else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return AiohttpTransport(
        # The transport makes a context of its own (the whole bundle again) unless given one;
        # it is used only by a session it creates itself, never by ours.
        verify=context,
        client=lambda: aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=connections,
                limit_per_host=connections,
                ssl=context,
                ttl_dns_cache=300,
            ),
            trust_env=False,
        ),
    )


# aiohttp failures arrive as httpx exceptions whose cause is the aiohttp one; the mapping
# of httpx-aiohttp calls every broken connection a ConnectTimeout, so the cause decides.
_CAUSES: tuple[tuple[type[BaseException], Reason, str], ...] = (
    (aiohttp.ServerTimeoutError, Reason.TIMEOUT, "timeout"),
    (aiohttp.ClientConnectorError, Reason.CONNECTION, "cannot connect"),
    (aiohttp.ServerDisconnectedError, Reason.CONNECTION, "the connection broke while reading"),
    (aiohttp.ClientPayloadError, Reason.CONNECTION, "the connection broke while reading"),
    (aiohttp.ClientResponseError, Reason.CONNECTION, "the server broke the HTTP protocol"),
    (aiohttp.ClientOSError, Reason.CONNECTION, "the connection broke while reading"),
    (aiohttp.ClientConnectionError, Reason.CONNECTION, "the connection broke"),
)
_HTTPX: tuple[tuple[type[BaseException], Reason, str], ...] = (
    (httpx.TimeoutException, Reason.TIMEOUT, "timeout"),
    (httpx.ConnectError, Reason.CONNECTION, "cannot connect"),
    (httpx.ReadError, Reason.CONNECTION, "the connection broke while reading"),
    (httpx.WriteError, Reason.CONNECTION, "the connection broke while writing"),
    (httpx.RemoteProtocolError, Reason.CONNECTION, "the server broke the HTTP protocol"),
    (httpx.ProxyError, Reason.CONNECTION, "proxy error"),
)


def _transport_failure(exc: BaseException) -> tuple[Reason, str]:
    cause = exc.__cause__
    for table, error in ((_CAUSES, exc), (_CAUSES, cause), (_HTTPX, exc)):
        for kind, reason, detail in table:
            if error is not None and isinstance(error, kind):
                return reason, detail
    return Reason.CONNECTION, type(exc).__name__
