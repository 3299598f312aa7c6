"""The command line: run, check, validate-config, demo."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from monitor import __version__, logs
from monitor.config.errors import ConfigError
from monitor.config.holder import ConfigHolder, Settings
from monitor.config.keys import read_api_key, refuse_agents_with_key
from monitor.config.loading import config_path, load_config
from monitor.config.schema import Config
from monitor.elevenlabs.pool import ClientPool, http_clients, wanted_clients
from monitor.evaluate import State, evaluate, worst
from monitor.model import Health, iso, printable, usage_word
from monitor.runtime.discovery import Discovery
from monitor.runtime.poller import Poller
from monitor.runtime.targets import Shard, parse_shard, resolve_targets
from monitor.store import AgentRecord, Store

EXIT_OK = 0
EXIT_WARNING = 1
EXIT_CONFIG = 2
EXIT_CRITICAL = 2
EXIT_UNKNOWN = 3
EXIT_INTERNAL = 1
# `check` is read as a Nagios plugin, where 1 and 2 are the agents' verdicts: its own config
# or internal error is UNKNOWN, as the plugin guidelines say, never WARNING or CRITICAL.
EXIT_CHECK_ERROR = EXIT_UNKNOWN


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="elevenlabs-link-monitor",
        description="Watch ElevenLabs agents' shareable links; export Prometheus metrics.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    config_help = "config file (default: $MONITOR_CONFIG, then ./config.yaml)"
    shard_help = "watch only shard N of M (default: $MONITOR_SHARD)"

    run = commands.add_parser("run", help="the long-running daemon")
    run.add_argument("--config", help=config_help)
    run.add_argument("--shard", metavar="N/M", help=shard_help)

    check = commands.add_parser("check", help="poll every agent once, print, exit by the worst")
    check.add_argument("--config", help=config_help)
    check.add_argument("--shard", metavar="N/M", help=shard_help)
    check.add_argument("--output", choices=["table", "json"], default="table")

    validate = commands.add_parser("validate-config", help="check the config; no network")
    validate.add_argument("--config", help=config_help)

    demo = commands.add_parser("demo", help="run against a built-in simulated API")
    demo.add_argument("--port", type=int, default=9877, help="metrics port (default 9877)")
    demo.add_argument(
        "--host",
        default="127.0.0.1",
        help="listen address (default 127.0.0.1; 0.0.0.0 in a container)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    checking = args.command == "check"
    try:
        if args.command == "validate-config":
            return _validate(args)
        if args.command == "check":
            return _check(args)
        if args.command == "run":
            return _run(args)
        return _demo(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_CHECK_ERROR if checking else EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(f"error: {exc.strerror or type(exc).__name__}", file=sys.stderr)
        return EXIT_CHECK_ERROR if checking else EXIT_INTERNAL
    except Exception as exc:
        if not checking:
            raise
        # One line and no traceback: a monitoring system shows the plugin's first line.
        print(f"error: internal error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_CHECK_ERROR


def _one_line(exc: Exception) -> str:
    """An exception as one line of text a terminal shows as is, any key redacted."""
    return printable(logs.redact(f"{type(exc).__name__}: {exc}"))


def _load(args: argparse.Namespace) -> tuple[Config, Any]:
    path = config_path(args.config)
    return load_config(path), path


def _validate(args: argparse.Namespace) -> int:
    config, path = _load(args)
    workspaces = config.resolved_workspaces()
    agents = sum(len(w.agents) for w in workspaces)
    print(f"{path}: valid ({len(workspaces)} workspace(s), {agents} configured agent(s))")
    return EXIT_OK


def _keys(config: Config, base: Any) -> dict[str, str]:
    problems: list[str] = []
    keys: dict[str, str] = {}
    for workspace in config.resolved_workspaces():
        try:
            keys[workspace.name] = read_api_key(workspace, base=base)
            logs.register_secret(keys[workspace.name])
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    refuse_agents_with_key(config, keys)
    return keys


def _run(args: argparse.Namespace) -> int:
    from monitor.runtime.daemon import Daemon
    from monitor.runtime.wiring import Runtime

    config, path = _load(args)
    shard = parse_shard(args.shard)
    keys = _keys(config, path.parent)
    logs.configure(config.logging.level, config.logging.format)

    def read_key(workspace: Any) -> str:
        return read_api_key(workspace, base=path.parent)

    initial = dict(keys)

    def first_then_fresh(workspace: Any) -> str:
        # The keys read at start-up are used once; a reload reads them again (rotation).
        key = initial.pop(workspace.name, None)
        return key if key is not None else read_key(workspace)

    runtime = Runtime(config, first_then_fresh, config_path=path, shard=shard)
    return asyncio.run(Daemon(runtime).run())


def _demo(args: argparse.Namespace) -> int:
    from monitor.demo import run_demo

    logs.configure("info", "json")
    return asyncio.run(run_demo(args.host, args.port))


# --- check ------------------------------------------------------------------------------------


def _check(args: argparse.Namespace) -> int:
    config, path = _load(args)
    shard = parse_shard(args.shard)
    keys = _keys(config, path.parent)
    # stdout carries the report; poll failures go to stderr as JSON lines.
    logs.configure("warning", config.logging.format, stream=sys.stderr)
    records, listing_failed = asyncio.run(_poll_once(config, keys, shard))
    now = time.time()
    settings = Settings.of(config)
    rows = [
        _row(r, evaluate(r.observation, now, settings.thresholds_for(r.key)), now) for r in records
    ]
    rows.sort(key=lambda r: (r["workspace"], r["agent_id"]))
    if args.output == "json":
        print(json.dumps({"version": 1, "agents": rows}, indent=2))
    else:
        print(_table(rows))
    if not rows:
        # Having checked nothing is not OK: UNKNOWN, with the reason.
        reason = _nothing(config, shard, listing_failed)
        print(f"error: nothing to check: {reason}", file=sys.stderr)
        return EXIT_UNKNOWN
    # A failed listing means agents that could not be polled: at least `unknown`. An archived
    # agent's expiry alerts nobody (nobody should renew its link): it does not count.
    states = [State(r["state"]) for r in rows if not r["archived"]]
    return exit_status(states + [State.UNKNOWN] * listing_failed)


def _nothing(config: Config, shard: Shard | None, listing_failed: bool) -> str:
    """Why `check` found no agent: the shard held none, or nothing was configured or listed."""
    names = sorted(printable(w.name) for w in config.resolved_workspaces())
    quoted = ", ".join(f"'{name}'" for name in names)
    if shard is not None:
        where = "workspace" if len(names) == 1 else "workspaces"
        return f"shard {shard} holds none of the agents configured or listed in {where} {quoted}"
    # Without a shard every configured agent is checked: none is configured, all discover.
    listings = "the listing of workspace" if len(names) == 1 else "the listings of workspaces"
    if not listing_failed:
        outcome = "returned none"
    else:
        outcome = "failed" if len(names) == 1 else "failed or returned none"
    return f"no configured agents and {listings} {quoted} {outcome}"


def exit_status(states: list[State]) -> int:
    """The worst agent decides, as the contract says."""
    bad = {State.CRITICAL, State.EXPIRED, State.MISSING, State.NOT_FOUND}
    if any(s in bad for s in states):
        return EXIT_CRITICAL
    if State.UNKNOWN in states:
        return EXIT_UNKNOWN
    if worst(states) is State.WARNING:
        return EXIT_WARNING
    return EXIT_OK


async def _poll_once(
    config: Config, keys: dict[str, str], shard: Shard | None
) -> tuple[list[AgentRecord], bool]:
    """Every agent polled once, discovered ones with the daemon's own discovery; and whether
    a listing failed."""
    store = Store()
    clients = ClientPool(http_clients(lambda _: None))
    clients.update(wanted_clients(config.resolved_workspaces(), keys, shard.count if shard else 1))
    try:
        health = Health()
        # Listed under the daemon's own deadline: a listing that never ends fails (timeout),
        # and the configured agents are polled all the same.
        discovery = Discovery(clients, health, ConfigHolder(config), usage_failures_level="info")
        await discovery.list_all()
        store.set_usage(discovery.usage())  # before the sync: each agent starts with it
        store.sync(resolve_targets(config, discovery.found, shard))
        poller = Poller(store, clients)
        await asyncio.gather(*(poller.poll(key) for key in store.agent_keys()))
        return store.snapshot(), bool(health.discovery_failing)
    finally:
        await clients.aclose()


def _row(record: AgentRecord, state: State, now: float) -> dict[str, Any]:
    expires_at = record.observation.expires_at if record.observation else None
    last_call = record.last_call
    return {
        "workspace": record.key.workspace,
        "agent_id": record.key.agent_id,
        "agent_name": record.name,
        "labels": dict(record.labels),
        "state": state.value,
        "expires_at": iso(expires_at) if expires_at is not None else None,
        "seconds_left": round(expires_at - now) if expires_at is not None else None,
        "poll_success": record.poll_success,
        "reason": record.last_error.value if record.last_error else None,
        "detail": record.last_error_detail or None,
        # As the listings say: `called` (then `last_call_at`), `never` or `unknown`; and
        # archived (true, false, or null when no listing said).
        "usage": usage_word(record.last_call),
        "last_call_at": iso(last_call) if isinstance(last_call, float) else None,
        "archived": record.archived,
    }


def _left(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{sign}{days}d{hours}h"
    if hours:
        return f"{sign}{hours}h{minutes}m"
    return f"{sign}{minutes}m{seconds % 60}s"


def _cell(value: object) -> str:
    """A table cell as text a terminal shows as is: names and ids are untrusted."""
    return printable(str(value))


def _table(rows: list[dict[str, Any]]) -> str:
    header = ["WORKSPACE", "AGENT_ID", "NAME", "STATE", "EXPIRES_AT", "LEFT", "ERROR"]
    lines = [
        [
            _cell(r["workspace"]),
            _cell(r["agent_id"]),
            _cell(r["agent_name"] or "-"),
            r["state"],
            r["expires_at"] or "-",
            _left(r["seconds_left"]),
            r["reason"] or "-",
        ]
        for r in rows
    ]
    widths = [max(len(c) for c in col) for col in zip(header, *lines, strict=False)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in [header, *lines]
    )
