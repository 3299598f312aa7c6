"""The config's schema: pydantic models, durations and the bounds of every value."""

from __future__ import annotations

import ipaddress
import math
import re
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from monitor.egress import proxy_url_problem, read_ca_bundle
from monitor.model import AGENT_ID_RULE, MAX_TAG_CHARS, ListingFilter, NamePattern, is_safe_agent_id

DEFAULT_BASE_URL = "https://api.elevenlabs.io"
DEFAULT_WORKSPACE = "default"

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


# What a config may ask for: beyond these a value is a typo (a unit missed, a digit too many),
# and taken as it is it would crash a timer or the rate limiter long after validate-config.
DAY = 86400.0
MAX_INTERVAL = DAY  # poll.interval, poll.discovery_interval
MAX_TIMEOUT = 300.0  # elevenlabs.timeout
MAX_THRESHOLD = 3650 * DAY  # thresholds.warning and .critical: ten years
MAX_REPEAT = 30 * DAY  # alerts.repeat_interval
MIN_RATE = 0.001  # max_requests_per_second: one request in 1000 s ...
MAX_RATE = 10_000.0  # ... to far more than any workspace allows


def _at_most(name: str, value: float, limit: float) -> float:
    if value > limit:
        raise ValueError(
            f"{name} ({format_duration(value)}) must be at most {format_duration(limit)}"
        )
    return value


def parse_duration(value: object) -> float:
    """Seconds from a number or a string such as `30s`, `5m`, `1h30m`, `7d`, `2w`."""
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or a string such as 30s, 5m, 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        elif text and re.fullmatch(f"(?:{_DURATION_PART.pattern})+", text):
            seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(text))
        else:
            raise ValueError(
                f"invalid duration {value!r}: use seconds or a string such as 30s, 5m, 1h, 7d, 2w"
            )
    else:
        raise ValueError("a duration must be a number of seconds or a string such as 30s, 5m, 1h")
    if not math.isfinite(seconds):
        raise ValueError(f"a duration must be finite, got {value!r}")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact unit form of a duration, for messages."""
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[float, BeforeValidator(parse_duration)]


def _not_a_boolean(value: object) -> object:
    # YAML's `true` is 1 to pydantic's lax numbers: a slip, not a count.
    if isinstance(value, bool):
        raise ValueError(f"must be a number, not {str(value).lower()}")
    return value


Count = Annotated[int, BeforeValidator(_not_a_boolean)]
Number = Annotated[float, BeforeValidator(_not_a_boolean)]

_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def is_listen_host(value: str) -> bool:
    """An IP address, or a host name of valid syntax (not all digits and dots)."""
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        pass
    labels = value.removesuffix(".").split(".")
    return (
        len(value) <= 253
        and all(_HOST_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    )


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApiSettings(_Model):
    """How to reach one ElevenLabs workspace (the `elevenlabs:` block)."""

    base_url: str = DEFAULT_BASE_URL
    api_key_env: str = "ELEVENLABS_API_KEY"
    api_key_file: Path | None = None
    timeout: Duration = 10.0
    max_concurrency: Count = Field(default=8, ge=1, le=1024)
    max_requests_per_second: Number = Field(
        default=5.0, ge=MIN_RATE, le=MAX_RATE, allow_inf_nan=False
    )
    max_retries: Count = Field(default=3, ge=0, le=10)
    # Egress (monitor/egress.py): a proxy that wins over HTTPS_PROXY/HTTP_PROXY/NO_PROXY, and
    # extra trusted roots. The proxy URL may hold a password: never in a repr or a message.
    proxy: str | None = Field(default=None, repr=False)
    ca_file: Path | None = None

    @field_validator("proxy")
    @classmethod
    def _proxy_url(cls, value: str | None) -> str | None:
        problem = None if value is None else proxy_url_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("ca_file")
    @classmethod
    def _ca_bundle(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        """Resolved against the config file's directory (as api_key_file) and read once when
        a config file is loaded (`config_dir` in the validation context); as given otherwise."""
        base = (info.context or {}).get("config_dir")
        if value is None or base is None:
            return value
        path = Path(base, value).absolute()
        try:
            read_ca_bundle(path)
        except ValueError as exc:
            raise ValueError(f"cannot use {path} as a CA bundle: {exc}") from None
        return path

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
            raise ValueError(f"must be an http(s) URL such as {DEFAULT_BASE_URL}, got {value!r}")
        return value.rstrip("/")

    @field_validator("timeout")
    @classmethod
    def _positive_timeout(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be greater than 0")
        return _at_most("timeout", value, MAX_TIMEOUT)

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if value.lower().startswith("sk_") or len(value) > 64:
            # Looks like the key itself: say so without echoing it.
            raise ValueError("must name the environment variable that holds the key, not the key")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError(f"{value!r} is not an environment variable name")
        return value

    @model_validator(mode="after")
    def _one_key_source(self) -> Self:
        if "api_key_env" in self.model_fields_set and self.api_key_file is not None:
            raise ValueError("set api_key_env or api_key_file, not both")
        return self


# The monitor's own label names, and Prometheus' reserved ones: an owner label of the same
# name would clash with (or silently replace) what every dashboard and rule relies on. An
# alert's own labels too: the rules' `severity` (and `alertname`) would override it.
RESERVED_LABELS = frozenset(
    {
        "workspace",
        "agent_id",
        "agent_name",
        "job",
        "instance",
        "namespace",
        "state",
        "reason",
        "level",
        "severity",
        "alertname",
    }
)
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
MAX_LABEL_VALUE = 256


def label_name_problem(name: object) -> str | None:
    """Why `name` cannot be an owner label's name, or None when it can."""
    if not isinstance(name, str) or not _LABEL_NAME.fullmatch(name):
        return f"{name!r} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)"
    if name.startswith("__"):
        return f"{name!r}: names starting with __ are reserved by Prometheus"
    if name in RESERVED_LABELS:
        return f"{name!r} is one of the monitor's own labels ({', '.join(sorted(RESERVED_LABELS))})"
    return None


_LINE_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _label_value_problem(value: object) -> str | None:
    if not isinstance(value, str):
        return f"a label value must be a string (quote it), not {type(value).__name__}"
    if len(value) > MAX_LABEL_VALUE:
        return f"a label value is at most {MAX_LABEL_VALUE} characters, not {len(value)}"
    if _LINE_BREAKS.search(value):
        return "a label value is one line, without control characters"
    return None


def _owner_labels(value: object) -> object:
    """`labels:`, one located problem per bad key or value (`labels.job: ...`)."""
    if not isinstance(value, dict):
        return value  # pydantic's own "Input should be a valid dictionary"
    problems: list[InitErrorDetails] = []
    for name, label in value.items():
        problem = label_name_problem(name) or _label_value_problem(label)
        if problem is not None:
            error = ValueError(problem)
            problems.append(
                InitErrorDetails(
                    type="value_error", loc=(str(name),), input=label, ctx={"error": error}
                )
            )
    if problems:
        raise ValidationError.from_exception_data("labels", problems)
    return value


# Owner labels: label name -> value; an empty value removes one inherited.
OwnerLabels = Annotated[dict[str, str], BeforeValidator(_owner_labels)]


def _optional_duration(value: object) -> float | None:
    return None if value is None else parse_duration(value)


class ThresholdOverride(_Model):
    """`thresholds:` on a workspace or an agent: either key or both, over what it inherits
    (global, then workspace); the pair resolved must keep warning above critical."""

    warning: Annotated[float | None, BeforeValidator(_optional_duration)] = None
    critical: Annotated[float | None, BeforeValidator(_optional_duration)] = None

    @field_validator("warning", "critical")
    @classmethod
    def _bounded(cls, value: float | None, info: ValidationInfo) -> float | None:
        return None if value is None else _at_most(str(info.field_name), value, MAX_THRESHOLD)


class AgentConfig(_Model):
    id: str = Field(min_length=1, max_length=256)
    name: str = Field(default="", max_length=256)
    labels: OwnerLabels = Field(default_factory=dict)
    thresholds: ThresholdOverride | None = None

    @field_validator("id")
    @classmethod
    def _path_safe(cls, value: str) -> str:
        # The id becomes a URL path segment; refuse what would change the path.
        if not is_safe_agent_id(value):
            raise ValueError(f"{value!r} is not an agent id ({AGENT_ID_RULE})")
        return value


def _unique_agents(agents: list[AgentConfig]) -> list[AgentConfig]:
    seen: set[str] = set()
    for agent in agents:
        if agent.id in seen:
            raise ValueError(f"agent id {agent.id!r} is listed twice")
        seen.add(agent.id)
    return agents


MAX_FILTER_TAGS = 50  # in `discover.tags` and `discover.exclude_tags`: each one is matched
FilterTag = Annotated[str, Field(min_length=1, max_length=MAX_TAG_CHARS)]
_USER_ID = re.compile(r"[A-Za-z0-9_.\-]{1,128}")


def compile_name_pattern(pattern: str) -> NamePattern:
    """`discover.name_pattern` compiled by RE2, or ValueError in one line.

    RE2 (Go's and Prometheus' syntax) matches in time linear in the name: Python's `re`
    backtracks, and a pattern such as `^(\\w+\\s?)+$` held the event loop for minutes on one
    hostile 51-character name from the API. Imported here only: a config without a pattern
    never loads it.
    """
    import re2

    options = re2.Options()
    options.log_errors = False  # the error is ours to say, in one line
    try:
        compiled: NamePattern = re2.compile(pattern, options)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise ValueError(
            f"not a regular expression in RE2 syntax (no backreferences or lookaround): {detail}"
        ) from None
    return compiled


class DiscoverSettings(_Model):
    """`discover:` as a map: which agents of the listing to watch, and labels from their tags.
    Sent as the listing's query parameters where the API filters (`search`, `tags`,
    `created_by`), checked on the answer otherwise (`exclude_tags`, `name_pattern`, `tags`)."""

    search: str | None = Field(default=None, min_length=1, max_length=256)
    tags: list[FilterTag] = Field(default_factory=list, max_length=MAX_FILTER_TAGS)  # any of
    exclude_tags: list[FilterTag] = Field(default_factory=list, max_length=MAX_FILTER_TAGS)
    name_pattern: str | None = Field(default=None, max_length=1024)
    created_by: str | None = None
    labels_from_tags: dict[str, FilterTag] = Field(default_factory=dict)  # label -> tag prefix
    # The exposure sweep: the archived agents (these filters too) listed and their links
    # polled at the discovery interval, so a live link nobody closed is seen.
    archived: bool = True

    @field_validator("name_pattern")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            compile_name_pattern(value)
        return value

    @field_validator("created_by")
    @classmethod
    def _user(cls, value: str | None) -> str | None:
        if value is not None and value != "@me" and not _USER_ID.fullmatch(value):
            raise ValueError(
                f"{value!r} is neither @me nor a user id (1 to 128 of letters, digits, _ . -)"
            )
        return value

    @field_validator("labels_from_tags", mode="before")
    @classmethod
    def _label_names(cls, value: object) -> object:
        for name in value if isinstance(value, dict) else ():
            problem = label_name_problem(name)
            if problem is not None:
                raise ValueError(problem)
        return value

    def listing_filter(self) -> ListingFilter:
        """What the listing sends and checks (the pattern was compiled once, at load)."""
        return ListingFilter(
            search=self.search,
            tags=tuple(self.tags),
            exclude_tags=tuple(self.exclude_tags),
            name_pattern=None
            if self.name_pattern is None
            else compile_name_pattern(self.name_pattern),
            created_by_user_id=self.created_by,
            label_prefixes=tuple(self.labels_from_tags.values()),
        )


def _discover(value: object) -> bool | DiscoverSettings:
    # `true`, `false` (as before 0.2), or a map: a map means discovery is on.
    if isinstance(value, bool | DiscoverSettings):
        return value
    if isinstance(value, dict):
        return DiscoverSettings.model_validate(value)  # its errors located under discover.
    raise ValueError("must be true, false or a map (search, tags, exclude_tags, ...)")


Discover = Annotated[bool | DiscoverSettings, PlainValidator(_discover)]


class WorkspaceConfig(ApiSettings):
    """One workspace: its API settings and the agents it watches."""

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")
    agents: list[AgentConfig] = Field(default_factory=list)
    labels: OwnerLabels = Field(default_factory=dict)
    thresholds: ThresholdOverride | None = None
    discover: Discover = False

    _check_agents = field_validator("agents")(_unique_agents)

    @property
    def discovery(self) -> DiscoverSettings | None:
        """What `discover:` asks for: None when off; `true` is a map without a filter."""
        if isinstance(self.discover, DiscoverSettings):
            return self.discover
        return DiscoverSettings() if self.discover else None


class PollSettings(_Model):
    interval: Duration = 300.0
    jitter: Duration = 10.0
    discovery_interval: Duration = 900.0
    spread: bool = True

    @model_validator(mode="after")
    def _sane(self) -> Self:
        if self.interval < 1:
            raise ValueError("interval must be at least 1s")
        if self.jitter >= self.interval:
            raise ValueError(
                f"jitter ({format_duration(self.jitter)}) must be shorter than "
                f"interval ({format_duration(self.interval)})"
            )
        if self.discovery_interval < 1:
            raise ValueError("discovery_interval must be at least 1s")
        _at_most("interval", self.interval, MAX_INTERVAL)
        _at_most("discovery_interval", self.discovery_interval, MAX_INTERVAL)
        return self


class ThresholdSettings(_Model):
    warning: Duration = 7 * 86400.0
    critical: Duration = 86400.0

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        _at_most("warning", self.warning, MAX_THRESHOLD)
        _at_most("critical", self.critical, MAX_THRESHOLD)
        if self.warning <= self.critical:
            raise ValueError(
                f"warning ({format_duration(self.warning)}) must be greater than "
                f"critical ({format_duration(self.critical)})"
            )
        return self


class AlertSettings(_Model):
    repeat_interval: Duration = 3600.0

    @field_validator("repeat_interval")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value < 1:
            raise ValueError("must be at least 1s")
        return _at_most("repeat_interval", value, MAX_REPEAT)


MIN_ACTIVE_WINDOW = 3600.0


class UsageSettings(_Model):
    """`usage:`: what counts as used. An agent not called within `active_window` (or never) is
    idle (the status page's `?idle=1`; the alert rules weigh its expiry alerts as `info`)."""

    active_window: Duration = 7 * DAY

    @field_validator("active_window")
    @classmethod
    def _window(cls, value: float) -> float:
        if value < MIN_ACTIVE_WINDOW:
            raise ValueError(f"must be at least {format_duration(MIN_ACTIVE_WINDOW)}")
        return _at_most("active_window", value, MAX_THRESHOLD)


class TlsSettings(_Model):
    """HTTPS for every endpoint; with `client_ca_file`, clients must show a certificate."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None


class ServerSettings(_Model):
    host: str = "0.0.0.0"
    port: Count = Field(default=9877, ge=0, le=65535)
    status_page: bool = True  # `/` and `/api/v1/...`; false leaves only the Prometheus endpoints
    tls: TlsSettings | None = None

    @field_validator("host")
    @classmethod
    def _listen_host(cls, value: str) -> str:
        # Caught here, not by `run`'s bind ("Unknown error -2") after validate-config said yes.
        if not is_listen_host(value):
            raise ValueError(f"{value!r} is not an IP address or a host name")
        return value


class MetricsSettings(_Model):
    expose_relative: bool = False


class LoggingSettings(_Model):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"


_Loc = tuple[str | int, ...]
_Pair = dict[str, tuple[float, _Loc]]  # warning, critical -> (seconds, where it is set)


def _resolved(pair: _Pair, override: ThresholdOverride | None, at: _Loc) -> _Pair:
    """`pair` with what `override` (at `at`) sets, key by key."""
    if override is None:
        return pair
    resolved = dict(pair)
    for key in ("warning", "critical"):
        value = getattr(override, key)
        if value is not None:
            resolved[key] = (value, at)
    return resolved


def _disorder(pair: _Pair, at: _Loc) -> list[InitErrorDetails]:
    """The problem at `at` when its resolved pair has warning not above critical; an
    inherited value says where it comes from."""
    (warning, warning_at), (critical, critical_at) = pair["warning"], pair["critical"]
    if warning > critical:
        return []

    def shown(seconds: float, source: _Loc) -> str:
        text = format_duration(seconds)
        if source == at:
            return text
        dotted = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in source)
        return f"{text}, from {dotted.replace('.[', '[')}"

    error = ValueError(
        f"warning ({shown(warning, warning_at)}) must be greater than "
        f"critical ({shown(critical, critical_at)})"
    )
    return [InitErrorDetails(type="value_error", loc=at, input=None, ctx={"error": error})]


class Config(_Model):
    """The whole config file."""

    elevenlabs: ApiSettings | None = None
    agents: list[AgentConfig] = Field(default_factory=list)
    labels: OwnerLabels = Field(default_factory=dict)  # the single form's workspace's
    discover: Discover = False
    workspaces: list[WorkspaceConfig] | None = None
    poll: PollSettings = PollSettings()
    thresholds: ThresholdSettings = ThresholdSettings()
    alerts: AlertSettings = AlertSettings()
    usage: UsageSettings = UsageSettings()
    server: ServerSettings = ServerSettings()
    metrics: MetricsSettings = MetricsSettings()
    logging: LoggingSettings = LoggingSettings()

    _check_agents = field_validator("agents")(_unique_agents)

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        single_form = {"elevenlabs", "agents", "discover", "labels"} & self.model_fields_set
        if self.workspaces is not None:
            if single_form:
                raise ValueError(
                    f"workspaces: cannot be combined with {', '.join(sorted(single_form))}: "
                    "use one form or the other"
                )
            if not self.workspaces:
                raise ValueError("workspaces: is empty")
            names = [w.name for w in self.workspaces]
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"workspace name {duplicates[0]!r} is used twice")
        for workspace in self.resolved_workspaces():
            if not workspace.agents and not workspace.discover:
                where = "agents" if self.workspaces is None else f"workspace {workspace.name!r}"
                raise ValueError(f"{where}: no agents to watch and discover is false")
        return self

    @model_validator(mode="after")
    def _thresholds_in_order(self) -> Self:
        """Every override's pair, resolved key by key (global, workspace, agent), keeps
        warning above critical: one located line per override that breaks it."""
        problems: list[InitErrorDetails] = []
        top: _Pair = {
            "warning": (self.thresholds.warning, ("thresholds",)),
            "critical": (self.thresholds.critical, ("thresholds",)),
        }
        for w, workspace in enumerate(self.resolved_workspaces()):
            where: _Loc = () if self.workspaces is None else ("workspaces", w)
            pair = _resolved(top, workspace.thresholds, (*where, "thresholds"))
            if workspace.thresholds is not None:
                problems += _disorder(pair, (*where, "thresholds"))
            for a, agent in enumerate(workspace.agents):
                if agent.thresholds is not None:
                    at = (*where, "agents", a, "thresholds")
                    problems += _disorder(_resolved(pair, agent.thresholds, at), at)
        if problems:
            raise ValidationError.from_exception_data("thresholds", problems)
        return self

    def resolved_workspaces(self) -> list[WorkspaceConfig]:
        """Every workspace; the single `elevenlabs:` form is the workspace `default`."""
        if self.workspaces is not None:
            return list(self.workspaces)
        api = self.elevenlabs or ApiSettings()
        fields = {k: getattr(api, k) for k in api.model_fields_set}
        return [
            WorkspaceConfig(
                name=DEFAULT_WORKSPACE,
                agents=self.agents,
                labels=self.labels,
                discover=self.discover,
                **fields,
            )
        ]
