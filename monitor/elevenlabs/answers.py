"""The API's answers read: a link body, a listing page, an error status, a Retry-After.

Bytes and statuses in, outcomes out; never raises, and no HTTP library.
"""

from __future__ import annotations

import dataclasses
import email.utils
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import structlog
from pydantic import ValidationError

from monitor.evaluate import TOKEN_MISSING, Kind, Observation
from monitor.logs import redact
from monitor.model import (
    EXPIRY_RANGE_PROBLEM,
    MAX_TAG_CHARS,
    RETRYABLE,
    AgentLinkResponse,
    AgentListResponse,
    AgentRow,
    AgentSummary,
    LinkAnswer,
    PollFailure,
    PollOutcome,
    Reason,
)

log = structlog.get_logger("monitor")


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
    elif status == 407:
        # Only a proxy says this (to a plain-HTTP request through it; CONNECT: transport.py).
        return PollFailure(
            Reason.CONNECTION,
            "proxy refused the request (HTTP 407: check the proxy's credentials)",
            status,
        )
    elif status >= 500:
        reason = Reason.SERVER_ERROR
    elif 400 <= status < 500:
        reason = Reason.CLIENT_ERROR
    else:
        reason = Reason.INVALID_RESPONSE
    return PollFailure(reason, detail, status, retry_after if reason in RETRYABLE else None)


# A listing page's bounds. The API's page_size is at most 100: a page of more than 1,000 rows
# is no page of this API, and reading it row by row would hold the loop for nothing.
MAX_LISTING_ROWS = 1_000
MAX_NAME_CHARS = 256  # as a configured name: a discovered one is cut there
ROWS_SHOWN = 5  # row indexes named in a listing's one line about its skipped or cut rows

# A lone surrogate (`"x\ud800y"` in JSON) is valid JSON but no character: kept, it would fail every
# encoding of the name later (/metrics, the page, a log line).
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _text(value: str) -> str:
    """Upstream text made encodable: each lone surrogate becomes U+FFFD."""
    return _LONE_SURROGATE.sub("\ufffd", value)


@dataclass(frozen=True, slots=True)
class ListPage:
    """One page of the agent listing; its rows are read one by one (`listed_agent`)."""

    answer: AgentListResponse


def _unfit(detail: str = "the agent listing does not fit the schema") -> PollFailure:
    return PollFailure(Reason.INVALID_RESPONSE, detail, 200)


def parse_list_body(body: bytes) -> ListPage | PollFailure:
    """A 200 listing body to a page, or an `invalid_response` failure; never raises.

    Only the page's frame is checked here (`agents` a list of at most MAX_LISTING_ROWS rows, a
    `next_cursor` wherever `has_more` says there is more): whatever a row holds, it costs
    that row alone (`listed_agent`). Decoded by `json`, which, unlike pydantic's parser,
    takes a lone surrogate escape: one such name must not cost every agent of the page.
    """
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return _unfit()
    try:
        answer = AgentListResponse.model_validate(data)
    except (ValidationError, RecursionError):
        return _unfit()
    if len(answer.agents) > MAX_LISTING_ROWS:
        return _unfit(f"the agent listing has a page of more than {MAX_LISTING_ROWS:,} rows")
    cursor = answer.next_cursor
    if answer.has_more and not cursor:
        # The pages after this one cannot be fetched: taken as complete, their agents would
        # be dropped as if they had gone.
        return _unfit("the agent listing says has_more but gives no next_cursor")
    if cursor is not None and _LONE_SURROGATE.search(cursor):
        return _unfit("the agent listing's next_cursor is not text")
    return ListPage(answer)


@dataclass(slots=True)
class RowTally:
    """A listing's rows that are not agents and its names that were cut: counted as they
    come, told in one line each per listing (`log`), never one line per row."""

    skipped: int = 0
    skipped_rows: list[int] = dataclasses.field(default_factory=list)
    fields: dict[str, int] = dataclasses.field(default_factory=dict)
    first_problem: str = ""
    cut: int = 0
    cut_rows: list[int] = dataclasses.field(default_factory=list)

    def skip(self, index: int, field_name: str, problem: str) -> None:
        if not self.skipped:
            self.first_problem = f"listing row {index}: {field_name}: {problem}"
        self.skipped += 1
        if len(self.skipped_rows) < ROWS_SHOWN:
            self.skipped_rows.append(index)
        # The row's fields (agent_id, name, archived) or "the row": a few keys at most.
        self.fields[field_name] = self.fields.get(field_name, 0) + 1

    def cut_name(self, index: int) -> None:
        self.cut += 1
        if len(self.cut_rows) < ROWS_SHOWN:
            self.cut_rows.append(index)

    def log(self) -> None:
        # Indexes and fields, never a row's content: upstream text that may carry a secret.
        if self.skipped:
            log.warning(
                "discovery_rows_skipped",
                count=self.skipped,
                rows=self.skipped_rows,
                fields=self.fields,
                reason=self.first_problem,
            )
        if self.cut:
            log.warning(
                "discovered_names_cut", count=self.cut, rows=self.cut_rows, limit=MAX_NAME_CHARS
            )


def listed_agent(row: object, index: int, tally: RowTally) -> AgentSummary | None:
    """One row of the listing as the monitor keeps it, or None when it does not fit the
    schema (counted in `tally`). Only the id, the name, `archived`, the tags and the last call
    time (read leniently: whatever it holds never costs the row) are kept; the
    name is made encodable, redacted, then cut to MAX_NAME_CHARS (redacted first: a cut through
    a key would leave part of it unrecognised); each tag likewise, cut to MAX_TAG_CHARS (at most
    MAX_ROW_TAGS of them, strings only: a row's bad tags never cost the row)."""
    try:
        agent = AgentRow.model_validate(row)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False, include_context=False)[0]
        field_name = ".".join(str(part) for part in error["loc"]) or "the row"
        tally.skip(index, field_name, error["msg"])
        return None
    name = redact(_text(agent.name))
    if len(name) > MAX_NAME_CHARS:
        name = name[:MAX_NAME_CHARS]
        tally.cut_name(index)
    # Tags as names: upstream text that may become a label value (labels_from_tags).
    tags = tuple(redact(_text(tag))[:MAX_TAG_CHARS] for tag in agent.tags)
    return AgentSummary(
        agent_id=_text(agent.agent_id),
        name=name,
        archived=agent.archived,
        tags=tags,
        last_call_time_unix_secs=agent.last_call_time_unix_secs,
    )
