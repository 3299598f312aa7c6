"""The types every part of the monitor shares: answers, failures, keys, health, time, and
untrusted text made safe to show.

Imports no I/O library, so that the store, the alerts and the pages never pull in the HTTP
client to name what it returns.
"""

from __future__ import annotations

import datetime
import enum
import itertools
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

from monitor.evaluate import AGENT_NOT_FOUND, Observation

# --- answer models (shared with the simulated API) --------------------------------------------


# An expiry outside these years is not seconds (milliseconds, say) or not a date at all: taken
# as it is, it would raise a false alert or break every page that shows it.
EARLIEST_EXPIRY = 946_684_800  # 2000-01-01T00:00:00Z
LATEST_EXPIRY = 7_258_118_400  # 2200-01-01T00:00:00Z
EXPIRY_RANGE_PROBLEM = "not a Unix time in seconds between 2000 and 2200"

# One URL path segment that needs no escaping and cannot climb the path (`.`, `..`).
_AGENT_ID = re.compile(r"[A-Za-z0-9_.~-]{1,256}")
AGENT_ID_RULE = "1 to 256 of letters, digits, _ - . ~, not only dots"


def is_safe_agent_id(value: str) -> bool:
    """Whether an agent id is one safe path segment (the same rule for config and discovery)."""
    return _AGENT_ID.fullmatch(value) is not None and value.strip(".") != ""


class ConversationToken(BaseModel):
    """`ConversationTokenDBModel` of the spec; unknown fields are allowed.

    Strict: a boolean or a string is not an integer, whatever Python would make of it.
    """

    model_config = ConfigDict(extra="allow", strict=True)

    agent_id: str | None = None
    conversation_token: SecretStr
    expiration_time_unix_secs: int | None = None
    conversation_id: str | None = None
    purpose: str | None = None  # signed_url, shareable_link, and whatever comes next
    token_requester_user_id: str | None = None

    @field_validator("expiration_time_unix_secs")
    @classmethod
    def _plausible(cls, value: int | None) -> int | None:
        if value is not None and not EARLIEST_EXPIRY <= value < LATEST_EXPIRY:
            raise ValueError(EXPIRY_RANGE_PROBLEM)
        return value


class AgentLinkResponse(BaseModel):
    """`GetAgentLinkResponseModel` of the spec."""

    model_config = ConfigDict(extra="allow", strict=True)

    agent_id: str
    token: ConversationToken | None = None


class Unknown(enum.Enum):
    """What the listing did not say (an absent or unreadable field): no value, and not "never"."""

    UNKNOWN = "unknown"


UNKNOWN = Unknown.UNKNOWN
# When an agent was last called, as its listing row says: a Unix time, None when it never
# was (`last_call_time_unix_secs: null`), UNKNOWN when the row does not say or says nonsense.
LastCall = float | None | Literal[Unknown.UNKNOWN]
# The largest integer a float holds exactly (and far past any real time): a last call time is
# upstream data, and a number past this is a bug or an attack, not a moment.
LATEST_CALL = 2**53


def lenient_last_call(value: object) -> LastCall:
    """`last_call_time_unix_secs` read leniently: a finite number in [0, 2**53] is a time,
    null is never, anything else (a string, a boolean, a negative, NaN, a huge number) is
    unknown. Never raises: usage only weighs alerts, and a row skipped over it would leave an
    agent silently unwatched."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return UNKNOWN
    if isinstance(value, int):  # checked as an integer: float() of 10**400 raises
        return float(value) if 0 <= value <= LATEST_CALL else UNKNOWN
    return value if math.isfinite(value) and 0 <= value <= LATEST_CALL else UNKNOWN


def usage_word(last_call: LastCall) -> str:
    """`called`, `never` or `unknown`: what the listing says of an agent's use (the status
    page, the API and `check` say it alike)."""
    if last_call is UNKNOWN:
        return "unknown"
    return "never" if last_call is None else "called"


@dataclass(frozen=True, slots=True)
class Usage:
    """What the listings say of an agent's use: its last call and whether it is archived."""

    last_call: LastCall = UNKNOWN
    archived: bool = False


@dataclass(frozen=True, slots=True)
class AgentSummary:
    """A listed agent as the monitor keeps it until the listing ends: slots only. A listing
    holds every kept agent until its last page; as pydantic models (a `__dict__` and a
    fields-set per row) 10,000 of them took 11.5 MiB, as this about a fifth of it."""

    agent_id: str
    name: str = ""
    archived: bool = False
    tags: tuple[str, ...] = ()
    last_call_time_unix_secs: LastCall = UNKNOWN


class AgentRow(BaseModel):
    """One row of the agent listing as the API sends it (the schema it is checked against)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    agent_id: str
    name: str = ""
    archived: bool = False
    tags: tuple[str, ...] = ()
    # Unknown when absent: the row says nothing of the agent's use.
    last_call_time_unix_secs: LastCall = UNKNOWN

    @field_validator("last_call_time_unix_secs", mode="plain")
    @classmethod
    def _lenient(cls, value: object) -> LastCall:
        return lenient_last_call(value)

    @field_validator("name", mode="before")
    @classmethod
    def _unnamed(cls, value: object) -> object:
        # The API names an unnamed agent `null`: that is an empty name, not a bad row.
        return "" if value is None else value

    @field_validator("tags", mode="before")
    @classmethod
    def _some_tags(cls, value: object) -> tuple[str, ...]:
        # Tags only filter and label: bad ones never cost the row. The first MAX_ROW_TAGS
        # strings are kept, anything else is dropped (answers.listed_agent cuts each).
        if not isinstance(value, list | tuple):
            return ()
        return tuple(itertools.islice((t for t in value if isinstance(t, str)), MAX_ROW_TAGS))


MAX_ROW_TAGS = 50  # tags kept of a listed agent
MAX_TAG_CHARS = 256  # a listed agent's tag is cut there


class NamePattern(Protocol):
    """A compiled `discover.name_pattern` (RE2's, see config.schema.compile_name_pattern)."""

    def search(self, text: str) -> object | None: ...


@dataclass(frozen=True, slots=True)
class ListingFilter:
    """Which agents a discovery listing keeps (`discover:` as a map). What the API filters
    itself is sent as query parameters (`params`); the rest, and the tags again as a guard,
    is checked on each row (`keeps`)."""

    search: str | None = None
    tags: tuple[str, ...] = ()  # any of
    exclude_tags: tuple[str, ...] = ()
    name_pattern: NamePattern | None = None  # searched in the name (RE2: linear time)
    created_by_user_id: str | None = None  # `@me` or a user id
    label_prefixes: tuple[str, ...] = ()  # of `labels_from_tags`: the tags worth keeping
    # Only these agents (a configured workspace's usage listing): the rest of a 50,000-row
    # listing is dropped row by row, not held until its last page.
    agent_ids: frozenset[str] | None = None

    def kept_tags(self, tags: tuple[str, ...]) -> tuple[str, ...]:
        """The tags a kept agent still needs once filtered: those a label is taken from.

        A listing holds every kept agent until its last page: 50,000 agents with 50 tags of
        256 characters each would be 640 million characters of tags nobody reads.
        """
        return tuple(t for t in tags if t.startswith(self.label_prefixes))

    def params(self) -> dict[str, str | list[str]]:
        """The listing's query parameters; `tags` is repeated, once for each tag."""
        params: dict[str, str | list[str]] = {}
        if self.search:
            params["search"] = self.search
        if self.tags:
            params["tags"] = list(self.tags)
        if self.created_by_user_id:
            params["created_by_user_id"] = self.created_by_user_id
        return params

    def keeps(self, agent: AgentSummary) -> bool:
        """Whether a listed agent passes what is checked on the answer."""
        if self.agent_ids is not None and agent.agent_id not in self.agent_ids:
            return False
        if self.tags and set(self.tags).isdisjoint(agent.tags):
            return False
        if self.exclude_tags and not set(self.exclude_tags).isdisjoint(agent.tags):
            return False
        return self.name_pattern is None or self.name_pattern.search(agent.name) is not None


class AgentListResponse(BaseModel):
    """`GET /v1/convai/agents`: one page of the listing."""

    model_config = ConfigDict(extra="allow", strict=True)

    # Rows are validated one by one (AgentRow): one bad row must not fail the page.
    agents: list[Any]
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
    # Owner labels (config, tags), sorted by name: on elevenlabs_agent_info, for routing.
    labels: tuple[tuple[str, str], ...] = ()


Labels = tuple[tuple[str, str], ...]  # owner labels, sorted by name, none with an empty value


def merge_labels(under: Iterable[tuple[str, str]], over: Iterable[tuple[str, str]]) -> Labels:
    """`under` overridden key by key by `over`, sorted by name; an empty value removes the
    label (as an empty label value does in Prometheus)."""
    merged = dict(under)
    merged.update(over)
    return tuple(sorted((name, value) for name, value in merged.items() if value))


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
    discovery_last_success: dict[str, float] = field(default_factory=dict)
    # Workspace -> the reason of its last listing, while that listing failed (the one record
    # of which workspaces fail: the status page, the API and `check` read it).
    discovery_failing: dict[str, str] = field(default_factory=dict)
    # (workspace, listing) -> the reason that listing last failed, while it fails: `live`, a
    # non-discovering workspace's listing for its agents' usage (then unknown); `archived`,
    # the archived agents' (the last good one kept). Its polls go on; it is not "failing".
    usage_failing: dict[tuple[str, str], str] = field(default_factory=dict)


# --- time -------------------------------------------------------------------------------------


def iso(timestamp: float) -> str:
    """A Unix time as ISO 8601 UTC to the second; total: a time no calendar can show (NaN,
    out of datetime's range, an integer too long to print) never raises."""
    try:
        moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
        return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError, TypeError):
        pass
    try:
        return f"{float(timestamp):g}"
    except (OverflowError, ValueError, TypeError):
        return "out of range"


# --- untrusted text -----------------------------------------------------------------------------

# Characters a terminal acts on or reorders: C0 and C1 controls and DEL (escape sequences,
# carriage returns and newlines forge rows or retitle the window), the line and paragraph
# separators, and the bidirectional overrides and isolates (which reorder what follows).
_UNPRINTABLE = {
    **{c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))},
    **{c: f"\\u{c:04x}" for c in (0x061C, 0x200E, 0x200F, 0x2028, 0x2029)},
    **{c: f"\\u{c:04x}" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))},
    ord("\t"): "\\t",
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\\"): "\\\\",  # so that a name spelling `\x1b` cannot pass for an escaped ESC
}


def printable(text: str) -> str:
    """`text` (a name, an id: upstream text) as a terminal shows it as is, every character
    it would act on or reorder written as an escape."""
    return text.translate(_UNPRINTABLE)


def printable_cut(text: str, limit: int) -> tuple[str, bool]:
    """`printable(text)` in at most `limit` characters, never ending inside an escape; and
    whether anything was cut. Redact before: a cut could leave half a secret unrecognised."""
    pieces: list[str] = []
    used = 0
    for char in text:  # at most limit + 1 of them: each shows as one character or more
        piece = char.translate(_UNPRINTABLE)
        if used + len(piece) > limit:
            return "".join(pieces), True
        pieces.append(piece)
        used += len(piece)
    return "".join(pieces), False
