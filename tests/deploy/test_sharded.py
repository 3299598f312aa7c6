"""deploy/kubernetes/sharded: the StatefulSet variant, rendered by the real kubectl."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config import ConfigError, parse_config
from monitor.targets import Shard, parse_shard
from tests.deploy._helpers import JOB, KUBERNETES_DIR, assert_restricted, output, run
from tests.tooling import require_tool

SHARDED_DIR = KUBERNETES_DIR / "sharded"
CONFIG_DIR = "/etc/elevenlabs-link-monitor"
KEY_DIR = "/var/run/secrets/elevenlabs"
KEY_FILE = f"{KEY_DIR}/api-key"
POD_INDEX_FIELD = "metadata.labels['apps.kubernetes.io/pod-index']"
SHARD_ARGS = ["run", "--shard", "$(POD_INDEX)/$(SHARD_COUNT)"]

Manifest = dict[str, Any]


def _render(directory: Path) -> list[Manifest]:
    kubectl = require_tool("kubectl")
    result = run([kubectl, "kustomize", str(directory)])
    assert result.returncode == 0, output(result)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> list[Manifest]:
    return _render(SHARDED_DIR)


@pytest.fixture(scope="module")
def base() -> list[Manifest]:
    return _render(KUBERNETES_DIR)


def _all(rendered: list[Manifest], kind: str) -> list[Manifest]:
    return [doc for doc in rendered if doc["kind"] == kind]


def _one(rendered: list[Manifest], kind: str) -> Manifest:
    found = _all(rendered, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def _named(rendered: list[Manifest], kind: str, name: str) -> Manifest:
    (found,) = [doc for doc in _all(rendered, kind) if doc["metadata"]["name"] == name]
    return found


def _pod(rendered: list[Manifest]) -> Manifest:
    pod: Manifest = _one(rendered, "StatefulSet")["spec"]["template"]["spec"]
    return pod


def _container(rendered: list[Manifest]) -> Manifest:
    containers = _pod(rendered)["containers"]
    assert len(containers) == 1
    container: Manifest = containers[0]
    return container


def _env(rendered: list[Manifest]) -> dict[str, Manifest]:
    return {item["name"]: item for item in _container(rendered).get("env", [])}


def _shard_count(rendered: list[Manifest]) -> int:
    value = _env(rendered)["SHARD_COUNT"]["value"]
    assert isinstance(value, str), "env values are strings in Kubernetes"
    assert value.isdigit(), value
    return int(value)


def _expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in args (unknown references stay as written)."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), text)


def test_renders_the_expected_objects_without_namespace(rendered: list[Manifest]) -> None:
    kinds = sorted(doc["kind"] for doc in rendered)
    # No Deployment (never both pollers); the PrometheusRule stays in the base.
    assert kinds == ["ConfigMap", "Service", "Service", "ServiceMonitor", "StatefulSet"]
    for doc in rendered:
        assert "namespace" not in doc["metadata"], f"{doc['kind']} pins a namespace"
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == JOB


def test_replicas_equal_the_shard_count(rendered: list[Manifest]) -> None:
    spec = _one(rendered, "StatefulSet")["spec"]
    assert spec["replicas"] == 3
    assert spec["replicas"] == _shard_count(rendered), (
        "statefulset.yaml: spec.replicas and env SHARD_COUNT must be changed together"
    )
    assert spec["podManagementPolicy"] == "Parallel"
    # The shard index is the ordinal, so ordinals must start at 0.
    assert "ordinals" not in spec


def test_governing_service_is_headless_and_not_scraped(rendered: list[Manifest]) -> None:
    statefulset = _one(rendered, "StatefulSet")
    governing = _named(rendered, "Service", statefulset["spec"]["serviceName"])
    assert governing["spec"]["clusterIP"] == "None"
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    for key, value in governing["spec"]["selector"].items():
        assert pod_labels[key] == value
    # The ServiceMonitor must not select it, or every pod would be scraped twice.
    selector = _one(rendered, "ServiceMonitor")["spec"]["selector"]["matchLabels"]
    labels = governing["metadata"]["labels"]
    assert any(labels.get(key) != value for key, value in selector.items())


def test_shard_from_the_pod_ordinal(rendered: list[Manifest]) -> None:
    container = _container(rendered)
    assert container["args"] == SHARD_ARGS
    env = _env(rendered)
    assert env["POD_INDEX"]["valueFrom"] == {"fieldRef": {"fieldPath": POD_INDEX_FIELD}}
    assert "value" not in env["POD_INDEX"]
    # One source for the shard: the flag. MONITOR_SHARD would be ignored; keep it out.
    assert "MONITOR_SHARD" not in env
    assert "command" not in container, "the image's ENTRYPOINT must stay in charge"


def test_every_ordinal_maps_to_a_valid_shard(rendered: list[Manifest]) -> None:
    replicas = _one(rendered, "StatefulSet")["spec"]["replicas"]
    count = _shard_count(rendered)
    flag = _container(rendered)["args"][2]
    shards = []
    for ordinal in range(replicas):
        text = _expand(flag, {"POD_INDEX": str(ordinal), "SHARD_COUNT": str(count)})
        shards.append(parse_shard(text))
    assert shards == [Shard(ordinal, count) for ordinal in range(count)]

    # A replica too many gets an invalid shard and exits with a config error...
    with pytest.raises(ConfigError):
        parse_shard(_expand(flag, {"POD_INDEX": str(count), "SHARD_COUNT": str(count)}))
    # ...and so does a cluster without the pod-index label (an empty POD_INDEX).
    with pytest.raises(ConfigError):
        parse_shard(_expand(flag, {"POD_INDEX": "", "SHARD_COUNT": str(count)}))


def test_restricted_security_context(rendered: list[Manifest]) -> None:
    pod = _pod(rendered)
    assert_restricted(pod, _container(rendered))
    # Anything writable is an explicit volume; the root filesystem stays read-only.
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in _container(rendered)["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]


def test_probes_at_the_daemon_port(rendered: list[Manifest]) -> None:
    container = _container(rendered)
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"metrics": 9877}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    config = parse_config(_configmap(rendered)["data"]["config.yaml"], "sharded/config.yaml")
    assert config.server.port == ports["metrics"]
    assert config.server.host == "0.0.0.0"
    resources = container["resources"]
    for section in ("requests", "limits"):
        assert set(resources[section]) == {"cpu", "memory"}, section


def _configmap(rendered: list[Manifest]) -> Manifest:
    return _one(rendered, "ConfigMap")


def test_config_from_configmap_and_key_from_secret_file(rendered: list[Manifest]) -> None:
    pod = _pod(rendered)
    container = _container(rendered)
    env = _env(rendered)
    assert env["MONITOR_CONFIG"]["value"] == f"{CONFIG_DIR}/config.yaml"
    # The key reaches the process only as a file: the one valueFrom is the pod index.
    assert [name for name, item in env.items() if "valueFrom" in item] == ["POD_INDEX"]
    assert "envFrom" not in container

    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}

    config_mount = mounts[CONFIG_DIR]
    assert config_mount["readOnly"] is True
    configmap_name = volumes[config_mount["name"]]["configMap"]["name"]
    configmap = _configmap(rendered)
    assert configmap["metadata"]["name"] == configmap_name  # hash suffix included
    assert configmap_name.startswith("elevenlabs-link-monitor-config-")

    key_mount = mounts[KEY_DIR]
    assert key_mount["readOnly"] is True
    secret = volumes[key_mount["name"]]["secret"]
    assert secret["secretName"] == "elevenlabs-link-monitor-api-key"
    assert secret["items"] == [{"key": "api-key", "path": "api-key"}]
    assert secret["defaultMode"] & 0o007 == 0, "the key file must not be world-readable"


def test_configmap_config_is_valid(rendered: list[Manifest]) -> None:
    text = _configmap(rendered)["data"]["config.yaml"]
    config = parse_config(text, "deploy/kubernetes/sharded/config.yaml")
    (workspace,) = config.resolved_workspaces()
    assert str(workspace.api_key_file) == KEY_FILE


def test_service_and_servicemonitor_scrape_every_replica(rendered: list[Manifest]) -> None:
    pod_labels = _one(rendered, "StatefulSet")["spec"]["template"]["metadata"]["labels"]
    monitor = _one(rendered, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selector = monitor["spec"]["selector"]["matchLabels"]
    selected = [
        service
        for service in _all(rendered, "Service")
        if all(service["metadata"]["labels"].get(k) == v for k, v in selector.items())
    ]
    assert len(selected) == 1, "the ServiceMonitor must select exactly one Service"
    (service,) = selected
    # The Service selects every replica (no per-pod label), so its endpoints are all pods.
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": JOB}
    for key, value in service["spec"]["selector"].items():
        assert pod_labels[key] == value
    assert "clusterIP" not in service["spec"]
    assert service["spec"]["publishNotReadyAddresses"] is True
    # endpoints (not a single static target): Prometheus scrapes each pod behind the port.
    assert [endpoint["port"] for endpoint in monitor["spec"]["endpoints"]] == ["metrics"]
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == JOB


def _without_shard_settings(pod_template: Manifest, configmap: str) -> Manifest:
    """A pod template with the shard args and env removed and the ConfigMap hash erased."""
    template = copy.deepcopy(pod_template)
    (container,) = template["spec"]["containers"]
    container.pop("args", None)
    container["env"] = [
        e for e in container["env"] if e["name"] not in {"POD_INDEX", "SHARD_COUNT"}
    ]
    for volume in template["spec"]["volumes"]:
        if volume.get("configMap", {}).get("name") == configmap:
            volume["configMap"]["name"] = "<config>"
    return template


def test_pod_template_matches_the_base_deployment(
    rendered: list[Manifest], base: list[Manifest]
) -> None:
    """Probes, resources, securityContext and volumes stay as in the base; only the shard differs."""
    statefulset = _one(rendered, "StatefulSet")
    deployment = _one(base, "Deployment")
    assert statefulset["metadata"]["labels"] == deployment["metadata"]["labels"]
    assert statefulset["spec"]["selector"] == deployment["spec"]["selector"]
    ours = _without_shard_settings(
        statefulset["spec"]["template"], _configmap(rendered)["metadata"]["name"]
    )
    theirs = _without_shard_settings(
        deployment["spec"]["template"], _configmap(base)["metadata"]["name"]
    )
    assert ours == theirs, (
        "sharded/statefulset.yaml's pod template drifted from ../deployment.yaml's"
    )
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"] == ["run"]


def test_copies_match_the_base(rendered: list[Manifest], base: list[Manifest]) -> None:
    for kind in ("Service", "ServiceMonitor"):
        name = _one(base, kind)["metadata"]["name"]
        assert _named(rendered, kind, name) == _one(base, kind), (
            f"sharded/{kind.lower()}.yaml drifted from the base's: copy it again"
        )
    ours = yaml.safe_load(_configmap(rendered)["data"]["config.yaml"])
    theirs = yaml.safe_load(_configmap(base)["data"]["config.yaml"])
    assert ours == theirs, "sharded/config.yaml drifted from ../config.yaml: copy it again"
    image = _container(rendered)["image"]
    assert image == _one(base, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]


def test_readme_documents_the_variant() -> None:
    readme = (SHARDED_DIR / "README.md").read_text(encoding="utf-8")
    for needed in ("SHARD_COUNT", "apps.kubernetes.io/pod-index", "1/M", "prometheusrule.yaml"):
        assert needed in readme, needed
