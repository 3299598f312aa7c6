"""Configuration: models, durations, loading and locating errors. The only YAML reader."""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Hashable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from monitor.config.files import open_regular
from monitor.model import AGENT_ID_RULE, is_safe_agent_id

DEFAULT_CONFIG_PATH = "config.yaml"
CONFIG_ENV = "MONITOR_CONFIG"
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
MAX_CONFIG_BYTES = 4 * 1024 * 1024  # the file; 10,000 agents take about 0.5 MiB
MAX_KEY_FILE_BYTES = 4096  # an API key is about 50 characters

# A failed load reports this many problems and how many it left out; each at most this long.
SHOWN_PROBLEMS = 20
MAX_PROBLEM_CHARS = 300


def _bounded_line(problem: str) -> str:
    if len(problem) <= MAX_PROBLEM_CHARS:
        return problem
    return problem[: MAX_PROBLEM_CHARS - 1] + "…"


class ConfigError(Exception):
    """A config that cannot be used; `problems` holds one located line each, bounded: the
    first SHOWN_PROBLEMS, then one line saying how many were left out (`all_problems` has
    them all). What a log line or stderr gets stays small however bad the file is."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.all_problems = list(problems)
        self.shown = [_bounded_line(p) for p in self.all_problems[:SHOWN_PROBLEMS]]
        self.left_out = len(self.all_problems) - len(self.shown)
        more = self.left_out
        self.problems = self.shown + (
            [f"and {more} more problem{'s' if more > 1 else ''}"] if more > 0 else []
        )
        super().__init__("; ".join(self.problems))


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


class AgentConfig(_Model):
    id: str = Field(min_length=1, max_length=256)
    name: str = Field(default="", max_length=256)

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


class WorkspaceConfig(ApiSettings):
    """One workspace: its API settings and the agents it watches."""

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")
    agents: list[AgentConfig] = Field(default_factory=list)
    discover: bool = False

    _check_agents = field_validator("agents")(_unique_agents)


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


class Config(_Model):
    """The whole config file."""

    elevenlabs: ApiSettings | None = None
    agents: list[AgentConfig] = Field(default_factory=list)
    discover: bool = False
    workspaces: list[WorkspaceConfig] | None = None
    poll: PollSettings = PollSettings()
    thresholds: ThresholdSettings = ThresholdSettings()
    alerts: AlertSettings = AlertSettings()
    server: ServerSettings = ServerSettings()
    metrics: MetricsSettings = MetricsSettings()
    logging: LoggingSettings = LoggingSettings()

    _check_agents = field_validator("agents")(_unique_agents)

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        single_form = {"elevenlabs", "agents", "discover"} & self.model_fields_set
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

    def resolved_workspaces(self) -> list[WorkspaceConfig]:
        """Every workspace; the single `elevenlabs:` form is the workspace `default`."""
        if self.workspaces is not None:
            return list(self.workspaces)
        api = self.elevenlabs or ApiSettings()
        fields = {k: getattr(api, k) for k in api.model_fields_set}
        return [
            WorkspaceConfig(
                name=DEFAULT_WORKSPACE, agents=self.agents, discover=self.discover, **fields
            )
        ]


# --- loading -------------------------------------------------------------------------------


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """SafeLoader that refuses duplicate keys: the second one would silently win."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    keys: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *defaults`: the mapping's own keys may override merged ones
        key = loader.construct_object(key_node)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                None, None, "a key cannot be a list or a mapping", key_node.start_mark
            )
        if key in keys:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        keys.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def config_path(explicit: str | None) -> Path:
    """`--config`, then `$MONITOR_CONFIG`, then `./config.yaml`."""
    return Path(explicit or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


def load_config(path: Path) -> Config:
    """Read and validate a config file, or raise ConfigError with located problems."""
    try:
        with open_regular(path) as file:
            # Read one byte past the limit rather than trust the size a stat reports.
            data = file.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(
                [
                    f"{path}: the config is larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MiB: "
                    "refused unread"
                ]
            )
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([f"{path}: cannot read the config: {reason}"]) from None
    return parse_config(text, str(path))


def parse_config(text: str, source: str = "<config>") -> Config:
    """Validate YAML text; problems name the source, the line and the field."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError([f"{source}{line}: invalid YAML: {problem}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: invalid YAML: {exc}"]) from None
    except RecursionError:
        raise ConfigError([f"{source}: invalid YAML: nested too deeply"]) from None
    except (ValueError, TypeError, LookupError, AttributeError):
        # PyYAML's constructors raise these for values such as `!!int abc` or `!!bool maybe`.
        raise ConfigError(
            [f"{source}: invalid YAML: a value does not fit its tag (such as !!int)"]
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [f"{source}:1: the config must be a mapping of keys, not a list or value"]
        )
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        # The node tree (for line numbers) is built only when there is something to locate:
        # for 10,000 agents it costs tens of MB.
        root = yaml.compose(text, Loader=_UniqueKeyLoader)
        raise ConfigError(_located(exc, root, source)) from None


def _line_of(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == part), None)
            key = next((k for k, _ in node.value if k.value == part), None)
            if match is None:
                return line
            line = (key or match).start_mark.line + 1
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _located(exc: ValidationError, root: yaml.Node | None, source: str) -> list[str]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(
            p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-"))
        )
        field = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in loc).replace(".[", "[")
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; unknown keys are errors)"
        elif error["type"] == "missing":
            message = "required key is missing"
        line = _line_of(root, loc)
        where = f"{source}:{line}" if line else source
        problems.append(f"{where}: {field or 'config'}: {message}")
    return problems


# --- secrets -------------------------------------------------------------------------------


def read_api_key(
    workspace: WorkspaceConfig, environ: Mapping[str, str] | None = None, base: Path | None = None
) -> str:
    """The workspace's API key from its file or environment variable, never from YAML."""
    label = "elevenlabs" if workspace.name == DEFAULT_WORKSPACE else f"workspace {workspace.name!r}"
    if workspace.api_key_file is not None:
        path = workspace.api_key_file
        if base is not None and not path.is_absolute():
            path = base / path
        try:
            with open_regular(path) as file:
                raw = file.read(MAX_KEY_FILE_BYTES + 1)
            key = raw.decode("utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not text"
            raise ConfigError(
                [f"{label}.api_key_file: cannot read the API key from {path}: {reason}"]
            ) from None
        if not key:
            raise ConfigError([f"{label}.api_key_file: {path} is empty"])
        if len(raw) > MAX_KEY_FILE_BYTES or not _one_printable_line(key):
            # Name the file, never what is in it.
            raise ConfigError(
                [
                    f"{label}.api_key_file: {path} must hold exactly one line, the API key "
                    "(printable ASCII)"
                ]
            )
        return key
    env = os.environ if environ is None else environ
    key = env.get(workspace.api_key_env, "").strip()
    if not key:
        raise ConfigError(
            [
                f"{label}.api_key_env: the environment variable {workspace.api_key_env} "
                "that should hold the API key is not set or empty"
            ]
        )
    if len(key) > MAX_KEY_FILE_BYTES or not _one_printable_line(key):
        raise ConfigError(
            [
                f"{label}.api_key_env: the environment variable {workspace.api_key_env} must "
                "hold one line, the API key (printable ASCII)"
            ]
        )
    return key


def refuse_agents_with_key(config: Config, keys: Mapping[str, str]) -> None:
    """Raise ConfigError if a configured agent's id or name contains any API key read: ids
    and names are shown on /metrics, the status page and in `check`. The problem names the
    workspace and the agent's position, never the id, the name or the key."""
    secrets = [key for key in keys.values() if key]
    problems = []
    for number, workspace in enumerate(config.resolved_workspaces()):
        where = "agents" if config.workspaces is None else f"workspaces[{number}].agents"
        for index, agent in enumerate(workspace.agents):
            if any(key in agent.id or key in agent.name for key in secrets):
                problems.append(
                    f"workspace {workspace.name!r}: {where}[{index}]: the agent's id or name "
                    "contains an API key, and ids and names are shown on every page: refused"
                )
    if problems:
        raise ConfigError(problems)


def _one_printable_line(key: str) -> bool:
    """What can go in an HTTP header as it is: a second line or a control character cannot."""
    return key.isascii() and key.isprintable()
