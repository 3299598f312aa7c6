"""The API's answers read: a link body, a listing page, an error status, a Retry-After.

Bytes and statuses in, outcomes out; never raises, and no HTTP library.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import structlog
from pydantic import ValidationError

from monitor.evaluate import TOKEN_MISSING, Kind, Observation
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


@dataclass(frozen=True, slots=True)
class ListPage:
    """One page of the agent listing; its rows are read one by one (`listed_agent`)."""

    answer: AgentListResponse


def parse_list_body(body: bytes) -> ListPage | PollFailure:
    """A 200 listing body to a page, or an `invalid_response` failure; never raises."""
    try:
        return ListPage(AgentListResponse.model_validate_json(body))
    except ValidationError:
        return PollFailure(
            Reason.INVALID_RESPONSE, "the agent listing does not fit the schema", 200
        )


def listed_agent(row: object, index: int) -> AgentSummary | None:
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
