"""The uvicorn internals that monitor/web/_h11guard.py relies on are still there.

GuardedH11Protocol subclasses uvicorn's private H11Protocol, and pyproject.toml pins uvicorn
below its next minor version. When the pin is raised, these tests name what a new uvicorn
took away, changed or took over, instead of the guard silently ceasing to guard.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import textwrap

import pytest
import uvicorn
from uvicorn.protocols.http import h11_impl
from uvicorn.protocols.http.h11_impl import H11Protocol

from monitor.web._h11guard import UVICORN_PRIVATE_NAMES, GuardedH11Protocol

REVISIT = (
    "revisit the guard (monitor/web/_h11guard.py) and the uvicorn pin in pyproject.toml "
    "before using this version"
)
# The asyncio.Protocol methods the guard overrides are public; the rest of uvicorn is not.
PROTOCOL_METHODS = frozenset(n for n in dir(asyncio.Protocol) if not n.startswith("_"))
RELIED_ON = frozenset(
    name.removeprefix("H11Protocol.")
    for name in UVICORN_PRIVATE_NAMES
    if name.startswith("H11Protocol.")
)
OVERRIDES = sorted(n for n in vars(GuardedH11Protocol) if n in PROTOCOL_METHODS | RELIED_ON)
# What the guard adds: header_timeout, _deadline, _arm, ...
OWN = sorted(
    n
    for n in vars(GuardedH11Protocol)
    if not n.startswith("__") and n not in PROTOCOL_METHODS | RELIED_ON
)


def init_attributes(cls: type) -> set[str]:
    """The attributes the class's own `__init__` sets on `self`, read from its source."""
    init = vars(cls).get("__init__")
    if init is None:
        return set()
    tree = ast.parse(textwrap.dedent(inspect.getsource(init)))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        for target in targets:
            if (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == "self"
            ):
                found.add(target.attr)
    return found


def has(cls: type, name: str) -> bool:
    """Whether uvicorn's class has `name`: on the class, or set on instances by __init__."""
    return hasattr(cls, name) or name in init_attributes(cls)


@pytest.mark.parametrize("qualified", UVICORN_PRIVATE_NAMES)
def test_every_private_name_the_guard_relies_on_is_there(qualified: str) -> None:
    class_name, _, name = qualified.partition(".")
    missing = (
        f"uvicorn {uvicorn.__version__} has no {qualified} (in {h11_impl.__name__}), "
        "which the guard relies on"
    )
    cls = getattr(h11_impl, class_name, None)
    assert isinstance(cls, type), f"{missing}: {REVISIT}"
    assert has(cls, name), f"{missing}: {REVISIT}"


@pytest.mark.parametrize("name", OVERRIDES)
def test_the_overridden_methods_take_what_uvicorn_passes(name: str) -> None:
    theirs = list(inspect.signature(getattr(H11Protocol, name)).parameters)
    ours = list(inspect.signature(getattr(GuardedH11Protocol, name)).parameters)
    assert ours == theirs, (
        f"uvicorn {uvicorn.__version__}'s H11Protocol.{name} takes {theirs}, the guard's "
        f"override {ours}: {REVISIT}"
    )


@pytest.mark.parametrize("name", OWN)
def test_the_guards_own_names_are_not_uvicorns(name: str) -> None:
    assert not has(H11Protocol, name), (
        f"uvicorn {uvicorn.__version__}'s H11Protocol now has {name} of its own, which "
        f"GuardedH11Protocol would override: {REVISIT}"
    )


def test_what_the_guard_overrides_and_adds_is_known() -> None:
    """The lists above are the class as it is: a test of none would pass for nothing."""
    assert {"handle_events", "on_response_complete", "send_400_response"} <= set(OVERRIDES)
    assert {"connection_made", "connection_lost", "pause_writing"} <= set(OVERRIDES)
    assert {"header_timeout", "write_timeout", "_idle_since", "_deadline", "_arm"} <= set(OWN)
    assert {"loop", "transport", "conn", "cycle", "connections"} <= init_attributes(H11Protocol)


def test_the_server_hooks_the_daemon_overrides_are_still_there() -> None:
    # server.py turns uvicorn's own signal handling off (the daemon owns SIGTERM and SIGHUP)
    # and closes lingering connections itself at shutdown: both lean on uvicorn internals.
    assert callable(getattr(uvicorn.Server, "capture_signals", None)), (
        f"uvicorn.Server.capture_signals is gone: {REVISIT}"
    )
    config = uvicorn.Config(app=None)  # type: ignore[arg-type]
    state = uvicorn.Server(config).server_state
    assert isinstance(getattr(state, "connections", None), set), (
        f"uvicorn ServerState.connections is gone or not a set: {REVISIT}"
    )
