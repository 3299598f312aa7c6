"""Loading a config file: size-bounded reading, YAML with duplicate keys refused, and
validation errors located by file, line and field. The only YAML reader."""

from __future__ import annotations

import os
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from monitor.config.errors import ConfigError
from monitor.config.files import open_regular
from monitor.config.schema import Config

DEFAULT_CONFIG_PATH = "config.yaml"
CONFIG_ENV = "MONITOR_CONFIG"
MAX_CONFIG_BYTES = 4 * 1024 * 1024  # the file; 10,000 agents take about 0.5 MiB


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
    # Files the config names (ca_file) resolve against its directory, as key files do.
    return parse_config(text, str(path), config_dir=path.parent)


def parse_config(text: str, source: str = "<config>", config_dir: Path | None = None) -> Config:
    """Validate YAML text; problems name the source, the line and the field. With
    `config_dir`, the files the config names (ca_file) are resolved against it and read."""
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
    try:
        data = _copied(data, {})
    except RecursionError:
        raise ConfigError([f"{source}: invalid YAML: nested too deeply"]) from None
    if not isinstance(data, dict):
        raise ConfigError(
            [f"{source}:1: the config must be a mapping of keys, not a list or value"]
        )
    try:
        context = {"config_dir": config_dir} if config_dir is not None else None
        return Config.model_validate(data, context=context)
    except ValidationError as exc:
        # The node tree (for line numbers) is built only when there is something to locate:
        # for 10,000 agents it costs tens of MB.
        root = yaml.compose(text, Loader=_UniqueKeyLoader)
        raise ConfigError(_located(exc, root, source)) from None


def _copied(value: Any, memo: dict[int, Any]) -> Any:
    """The loaded data in objects of its own. The parser allocates each scalar's string among
    the node tree's objects, which are garbage once loaded; strings kept from there pin that
    memory for the life of the process (10,000 agents: 19 MiB of RSS kept instead of 11).

    Shared objects stay shared and cycles stay cycles (`memo`, by identity): an alias bomb,
    cheap as the loader builds it, must not be expanded here."""
    if not isinstance(value, dict | list | str):
        return value
    copy = memo.get(id(value))
    if copy is not None:
        return copy
    if isinstance(value, str):  # a new object (a lone surrogate from an escape kept as is)
        copy = memo[id(value)] = value.encode("utf-8", "surrogatepass").decode(
            "utf-8", "surrogatepass"
        )
    elif isinstance(value, list):
        copy = memo[id(value)] = []
        copy.extend(_copied(item, memo) for item in value)
    else:
        copy = memo[id(value)] = {}
        for key, item in value.items():
            copy[_copied(key, memo)] = _copied(item, memo)
    return copy


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
