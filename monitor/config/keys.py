"""API keys: read from a file or an environment variable, never from YAML, and checked."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from monitor.config.errors import ConfigError
from monitor.config.files import open_regular
from monitor.config.schema import DEFAULT_WORKSPACE, Config, WorkspaceConfig

MAX_KEY_FILE_BYTES = 4096  # an API key is about 50 characters

KeyReader = Callable[[WorkspaceConfig], str]
"""What the runtime is given to read a workspace's key (a test passes a constant)."""


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
