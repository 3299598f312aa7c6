"""The local stack: deploy/compose.yaml and the files it mounts."""

from __future__ import annotations

import posixpath
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.system.grafana.support import (
    COMPOSE_ALERTMANAGER,
    COMPOSE_PROMETHEUS,
    DASHBOARD,
    DASHBOARD_PROVIDERS,
    DATASOURCES,
    DEPLOY,
    JOB,
    PROMETHEUS_RULES,
    ROOT,
    read_yaml,
)
from tests.tooling import require_tool


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts (named volumes left out)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = (DEPLOY / source).resolve()
    return mounts


def host_path(mounts: dict[str, Path], container_path: str) -> Path | None:
    """Where a container path comes from on the host, through a file or directory bind mount."""
    container_path = posixpath.normpath(container_path)
    for target, source in sorted(mounts.items(), key=lambda item: -len(item[0])):
        if container_path == target:
            return source
        if container_path.startswith(target.rstrip("/") + "/"):
            return source / posixpath.relpath(container_path, target)
    return None


def flag(command: list[str], name: str) -> str:
    (value,) = [arg.split("=", 1)[1] for arg in command if arg.startswith(f"--{name}=")]
    return value


def test_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= {"monitor", "prometheus", "alertmanager", "grafana"}


def test_monitor_is_built_from_the_repository(compose: dict[str, Any]) -> None:
    monitor = compose["services"]["monitor"]
    build = monitor["build"]
    context = build if isinstance(build, str) else build["context"]
    assert (DEPLOY / context).resolve() == ROOT
    assert (ROOT / "Dockerfile").is_file()
    # In a container the demo must listen beyond loopback, or nothing can scrape it.
    assert monitor["command"] == ["demo", "--host", "0.0.0.0"]
    assert any(str(port).endswith("9877") for port in monitor["ports"])


@pytest.mark.parametrize("service", ["prometheus", "alertmanager", "grafana"])
def test_images_are_pinned(compose: dict[str, Any], service: str) -> None:
    image = compose["services"][service]["image"]
    _, _, tag = image.partition(":")
    assert tag, f"{image} has no tag"
    assert tag != "latest"
    assert any(char.isdigit() for char in tag)


def test_every_bind_mount_exists(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for target, source in bind_mounts(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"


def test_prometheus_loads_the_mounted_config_and_rules(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    mounts = bind_mounts(prometheus)
    config_path = flag(prometheus["command"], "config.file")
    assert host_path(mounts, config_path) == COMPOSE_PROMETHEUS.resolve()
    config = read_yaml(COMPOSE_PROMETHEUS)
    for rule_file in config["rule_files"]:
        # Prometheus resolves it against the config file's directory, in the container.
        in_container = posixpath.join(posixpath.dirname(config_path), rule_file)
        assert host_path(mounts, in_container) == PROMETHEUS_RULES.resolve(), rule_file
        # ...and promtool does the same on the host.
        assert (COMPOSE_PROMETHEUS.parent / rule_file).resolve() == PROMETHEUS_RULES.resolve()


def test_prometheus_scrapes_the_monitor_and_alerts_to_alertmanager(compose: dict[str, Any]) -> None:
    config = read_yaml(COMPOSE_PROMETHEUS)
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == JOB]
    targets = [t for static in job["static_configs"] for t in static["targets"]]
    assert targets == ["monitor:9877"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    alertmanagers = [
        t
        for am in config["alerting"]["alertmanagers"]
        for static in am["static_configs"]
        for t in static["targets"]
    ]
    assert alertmanagers == ["alertmanager:9093"]
    assert {"monitor", "alertmanager"} <= set(compose["services"])


def test_alertmanager_loads_the_mounted_config(compose: dict[str, Any]) -> None:
    service = compose["services"]["alertmanager"]
    path = flag(service["command"], "config.file")
    assert host_path(bind_mounts(service), path) == COMPOSE_ALERTMANAGER.resolve()
    config = read_yaml(COMPOSE_ALERTMANAGER)
    receivers = {receiver["name"] for receiver in config["receivers"]}
    assert config["route"]["receiver"] in receivers


def test_grafana_provisioning(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    mounts = bind_mounts(grafana)
    provisioning = host_path(mounts, "/etc/grafana/provisioning")
    assert provisioning == DATASOURCES.parent.parent.resolve()
    assert (provisioning / "alerting" / "elevenlabs-link-monitor.yaml").is_file()

    (provider,) = read_yaml(DASHBOARD_PROVIDERS)["providers"]
    assert provider["type"] == "file"
    assert host_path(mounts, provider["options"]["path"]) == DASHBOARD.parent.resolve()
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert host_path(mounts, home) == DASHBOARD.resolve()

    urls = {ds["name"]: ds["url"] for ds in read_yaml(DATASOURCES)["datasources"]}
    for url in urls.values():
        host = url.split("://", 1)[1].split(":", 1)[0]
        assert host in compose["services"], url


def test_promtool_accepts_the_compose_prometheus_config() -> None:
    promtool = require_tool("promtool")
    result = subprocess.run(
        [promtool, "check", "config", str(COMPOSE_PROMETHEUS)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr


def test_amtool_accepts_the_alertmanager_config() -> None:
    amtool = require_tool("amtool")
    result = subprocess.run(
        [amtool, "check-config", str(COMPOSE_ALERTMANAGER)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
