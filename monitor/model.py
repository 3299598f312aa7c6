"""The types every part of the monitor shares: answers, failures, keys, health, time.

Imports no I/O library, so that the store, the alerts and the pages never pull in the HTTP
client to name what it returns.
"""

from __future__ import annotations

import datetime
import enum
from dataclasses import dataclass, field
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, SecretStr

from monitor.evaluate import AGENT_NOT_FOUND, Observation

# --- answer models (shared with the simulated API) --------------------------------------------


class ConversationToken(BaseModel):
    """`ConversationTokenDBModel` of the spec; unknown fields are allowed."""

    model_config = ConfigDict(extra="allow")

    agent_id: str | None = None
    conversation_token: SecretStr
    expiration_time_unix_secs: int | None = None
    conversation_id: str | None = None
    purpose: str | None = None  # signed_url, shareable_link, and whatever comes next
    token_requester_user_id: str | None = None


class AgentLinkResponse(BaseModel):
    """`GetAgentLinkResponseModel` of the spec."""

    model_config = ConfigDict(extra="allow")

    agent_id: str
    token: ConversationToken | None = None


class AgentSummary(BaseModel):
    model_config = ConfigDict(extra="allow")

    agent_id: str
    name: str = ""
    archived: bool = False


class AgentListResponse(BaseModel):
    """`GET /v1/convai/agents`: one page of the listing."""

    model_config = ConfigDict(extra="allow")

    agents: list[AgentSummary]
    next_cursor: str | None = None
    has_more: bool = False


# --- outcomes ---------------------------------------------------------------------------------


class Reason(enum.StrEnum):
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    UNAUTHORIZED = "unauthorized"
    NOT_FOUND = "not_found"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    CLIENT_ERROR = "client_error"
    INVALID_RESPONSE = "invalid_response"


RETRYABLE = frozenset({Reason.TIMEOUT, Reason.CONNECTION, Reason.RATE_LIMITED, Reason.SERVER_ERROR})


@dataclass(frozen=True, slots=True)
class LinkAnswer:
    """A valid 200 answer, reduced to what evaluation needs: never the token itself."""

    observation: Observation
    fingerprint: str | None  # a digest of token and expiry, to count rotations


@dataclass(frozen=True, slots=True)
class PollFailure:
    reason: Reason
    detail: str  # safe to log: a status and an error code, never a header or a token
    status: int | None = None
    retry_after: float | None = None

    @property
    def observation(self) -> Observation | None:
        """A 404 is a definitive answer about the agent; other failures say nothing."""
        return AGENT_NOT_FOUND if self.reason is Reason.NOT_FOUND else None


PollOutcome = LinkAnswer | PollFailure


# --- who is watched ---------------------------------------------------------------------------


class AgentKey(NamedTuple):
    workspace: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class Target:
    """An agent to watch, wherever the list came from (config, discovery)."""

    key: AgentKey
    name: str = ""


# --- the monitor's own health -----------------------------------------------------------------


@dataclass
class Health:
    """The monitor's own figures, written by the runtime, read at scrape time."""

    last_cycle: float | None = None
    last_cycle_duration: float | None = None
    config_reload_ok: bool = True
    config_reload_at: float | None = None
    cycles_overrun: int = 0
    scheduler_events: dict[str, int] = field(default_factory=dict)
    discovered: dict[str, int] = field(default_factory=dict)
    discovery_errors: dict[tuple[str, str], int] = field(default_factory=dict)


# --- time -------------------------------------------------------------------------------------


def iso(timestamp: float) -> str:
    """A Unix time as ISO 8601 UTC to the second; total: a time no calendar can show (NaN,
    out of datetime's range) is written as the number it is instead of raising."""
    try:
        moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return str(timestamp)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
