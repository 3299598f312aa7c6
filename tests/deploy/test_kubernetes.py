"""deploy/kubernetes: the kustomize base, rendered by the real kubectl."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.deploy._helpers import (
    JOB,
    KUBERNETES_DIR,
    PROMETHEUS_DIR,
    assert_restricted,
    output,
    run,
)
from tests.tooling import require_tool

CONFIG_DIR = "/etc/elevenlabs-link-monitor"
KEY_DIR = "/var/run/secrets/elevenlabs"
KEY_FILE = f"{KEY_DIR}/api-key"

Manifest = dict[str, Any]


@pytest.fixture(scope="module")
def rendered() -> list[Manifest]:
    kubectl = require_tool("kubectl")
    result = run([kubectl, "kustomize", str(KUBERNETES_DIR)])
    assert result.returncode == 0, output(result)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _one(rendered: list[Manifest], kind: str) -> Manifest:
    found = [doc for doc in rendered if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def _container(rendered: list[Manifest]) -> Manifest:
    containers = _one(rendered, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: Manifest = containers[0]
    return container


def _generator() -> ModuleType:
    path = KUBERNETES_DIR / "generate_prometheusrule.py"
    spec = importlib.util.spec_from_file_location("generate_prometheusrule", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_renders_the_expected_objects_without_namespace(rendered: list[Manifest]) -> None:
    kinds = sorted(doc["kind"] for doc in rendered)
    assert kinds == ["ConfigMap", "Deployment", "PrometheusRule", "Service", "ServiceMonitor"]
    for doc in rendered:
        assert "namespace" not in doc["metadata"], f"{doc['kind']} pins a namespace"


def test_deployment_runs_one_pinned_image(rendered: list[Manifest]) -> None:
    deployment = _one(rendered, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    image = _container(rendered)["image"]
    name, _, tag = image.rpartition(":")
    assert name == "ghcr.io/elevenlabs-link-monitor/elevenlabs-link-monitor"
    assert tag
    assert tag != "latest"


def test_restricted_security_context(rendered: list[Manifest]) -> None:
    pod = _one(rendered, "Deployment")["spec"]["template"]["spec"]
    assert_restricted(pod, _container(rendered))


def test_probes_and_resources(rendered: list[Manifest]) -> None:
    container = _container(rendered)
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"metrics": 9877}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    resources = container["resources"]
    for section in ("requests", "limits"):
        assert set(resources[section]) == {"cpu", "memory"}, section


def test_config_from_configmap_and_key_from_secret_file(rendered: list[Manifest]) -> None:
    pod = _one(rendered, "Deployment")["spec"]["template"]["spec"]
    container = _container(rendered)
    env = {item["name"]: item for item in container.get("env", [])}
    assert env["MONITOR_CONFIG"]["value"] == f"{CONFIG_DIR}/config.yaml"
    # The key reaches the process only as a file, never as an environment variable.
    assert all("valueFrom" not in item for item in env.values())
    assert "envFrom" not in container

    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}

    config_mount = mounts[CONFIG_DIR]
    assert config_mount["readOnly"] is True
    configmap_name = volumes[config_mount["name"]]["configMap"]["name"]
    configmap = _one(rendered, "ConfigMap")
    assert configmap["metadata"]["name"] == configmap_name  # hash suffix included
    assert configmap_name.startswith("elevenlabs-link-monitor-config-")
    config = yaml.safe_load(configmap["data"]["config.yaml"])
    assert config["elevenlabs"]["api_key_file"] == KEY_FILE
    assert config["server"]["port"] == 9877

    key_mount = mounts[KEY_DIR]
    assert key_mount["readOnly"] is True
    secret = volumes[key_mount["name"]]["secret"]
    assert secret["secretName"] == "elevenlabs-link-monitor-api-key"
    assert secret["items"] == [{"key": "api-key", "path": "api-key"}]
    assert secret["defaultMode"] & 0o007 == 0, "the key file must not be world-readable"

    # Anything writable is an explicit volume; the root filesystem stays read-only.
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]


def test_service_and_servicemonitor_select_the_pod(rendered: list[Manifest]) -> None:
    pod_labels = _one(rendered, "Deployment")["spec"]["template"]["metadata"]["labels"]
    service = _one(rendered, "Service")
    for key, value in service["spec"]["selector"].items():
        assert pod_labels[key] == value
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9877, "targetPort": "metrics", "protocol": "TCP"}
    ]
    monitor = _one(rendered, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    for key, value in monitor["spec"]["selector"]["matchLabels"].items():
        assert service["metadata"]["labels"][key] == value
    assert [endpoint["port"] for endpoint in monitor["spec"]["endpoints"]] == ["metrics"]
    # The job label the alert rules expect comes from this Service label.
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == JOB


def test_prometheusrule_groups_are_rules_yml(rendered: list[Manifest]) -> None:
    rule = _one(rendered, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    rules_yml = yaml.safe_load((PROMETHEUS_DIR / "rules.yml").read_text(encoding="utf-8"))
    assert rule["spec"]["groups"] == rules_yml["groups"]


def test_committed_prometheusrule_matches_generator() -> None:
    generator = _generator()
    committed = (KUBERNETES_DIR / "prometheusrule.yaml").read_text(encoding="utf-8")
    assert generator.render() == committed, (
        "deploy/kubernetes/prometheusrule.yaml is stale: "
        "run python deploy/kubernetes/generate_prometheusrule.py"
    )


def test_generator_detects_drift(tmp_path: Path) -> None:
    generator = _generator()
    rules = yaml.safe_load((PROMETHEUS_DIR / "rules.yml").read_text(encoding="utf-8"))
    rules["groups"][0]["rules"][1]["for"] = "1h"
    changed = tmp_path / "rules.yml"
    changed.write_text(yaml.safe_dump(rules), encoding="utf-8")
    text = generator.render(changed)
    assert text != generator.render()
    assert yaml.safe_load(text)["spec"]["groups"] == rules["groups"]

    result = run([sys.executable, str(KUBERNETES_DIR / "generate_prometheusrule.py"), "--check"])
    assert result.returncode == 0, output(result)


def test_kubernetes_config_is_valid() -> None:
    config_module = pytest.importorskip("monitor.config")
    text = (KUBERNETES_DIR / "config.yaml").read_text(encoding="utf-8")
    config = config_module.parse_config(text, "deploy/kubernetes/config.yaml")
    (workspace,) = config.resolved_workspaces()
    assert str(workspace.api_key_file) == KEY_FILE
    assert config.server.port == 9877
