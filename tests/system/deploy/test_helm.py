"""deploy/helm: the chart, linted, schema-checked and rendered by Helm's own engine.

helm-python-sdk binds Helm's Go SDK (the code behind `helm lint` and `helm template`), so
no helm binary is needed. The rendered objects then go through kubectl (kustomize reads
every object), the restricted-pod check, promtool and the monitor's own config parser.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml

from monitor.config.errors import ConfigError
from monitor.config.loading import load_config, parse_config
from monitor.runtime.targets import Shard, parse_shard
from tests.conftest import CANARY_KEY, canary_token
from tests.daemon import Daemon, wait_until
from tests.standin import StandIn, link
from tests.system.deploy._helpers import (
    CHART_DIR,
    DEPLOY,
    HELM_DIR,
    JOB,
    PROMETHEUS_DIR,
    REPO,
    assert_restricted,
    output,
    rules_generator,
    run,
)
from tests.tooling import require_tool

Manifest = dict[str, Any]
RELEASE = "elevenlabs-link-monitor"
NAMESPACE = "monitoring"
KEY_DIR = "/var/run/secrets/elevenlabs"
TLS_DIR = "/var/run/secrets/elevenlabs-link-monitor-tls"
POD_INDEX_FIELD = "metadata.labels['apps.kubernetes.io/pod-index']"
DAY = 86400
THRESHOLD_RULE = "elevenlabs_agent:link_threshold_seconds:last_known"
OWNER_RULE = "elevenlabs_agent:owner_labels:last_known"
IDLE_RULE = "elevenlabs_agent:idle:last_known"

VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "tls": {"tls": {"enabled": True, "existingSecret": "elevenlabs-link-monitor-tls"}},
    "shards": {"shards": 3},
    "thresholds": {"thresholds": {"warning": "3d", "critical": "12h"}},
    "workspaces": {
        "workspaces": [
            {"name": "prod", "discover": True, "existingSecret": "key-prod"},
            {
                "name": "eu",
                "base_url": "https://api.eu.residency.elevenlabs.io",
                "agents": [{"id": "agent_01", "name": "support-bot"}],
                "existingSecret": "key-eu",
                "secretKey": "token",
            },
        ],
        "serviceMonitor": {"additionalLabels": {"release": "kube-prometheus-stack"}},
        "prometheusRule": {"additionalLabels": {"release": "kube-prometheus-stack"}},
        "networkPolicy": {
            "ingressFrom": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mon"}}}
            ]
        },
    },
    # Every bound of the monitor's config at its edge, which it accepts.
    "bounds": {
        "elevenlabs": {"timeout": "5m", "max_requests_per_second": 0.001, "max_retries": 0},
        "discover": False,
        "agents": [{"id": "a" * 256}, {"id": "~._-", "name": "n" * 256}],
        "poll": {"interval": "1d", "jitter": "23h59m59s", "discovery_interval": 1},
        "thresholds": {"warning": "3650d", "critical": "1s"},
        "usage": {"active_window": "3650d"},
        "alerts": {"repeat_interval": "30d"},
    },
    # A reviewer's: names Helm and YAML could misread, a console log, three shards.
    "odd": {
        "shards": 3,
        "port": 80,
        "discover": False,
        "agents": [
            {"id": "agent_1", "name": 'a "quoted" {{ .Values.port }} name\nnewline: yes # x'},
            {"id": "agent_2", "name": "dup"},
        ],
        "logging": {"level": "debug", "format": "console"},
        "thresholds": {"warning": "2w", "critical": "36h"},
        "poll": {"interval": "1h30m", "jitter": "500ms"},
    },
    # Owners and policy (single form): the workspace's labels, an agent's own labels and
    # thresholds, a filtered discovery giving labels from tags, a proxy for the API.
    "owners": {
        "labels": {"team": "support", "env": "prod"},
        "agents": [
            {
                "id": "agent_pay",
                "name": "pay-bot",
                "labels": {"team": "payments"},
                "thresholds": {"warning": "30d", "critical": "3d"},
            },
            {"id": "agent_demo", "thresholds": {"critical": "2d"}},
        ],
        "discover": {
            "search": "prod",
            "tags": ["customer-facing"],
            "exclude_tags": ["internal"],
            "name_pattern": "^prod-",
            "created_by": "@me",
            "labels_from_tags": {"team": "team:"},
            "archived": False,
        },
        "usage": {"active_window": "14d"},
        "elevenlabs": {"proxy": "http://proxy.egress.svc:3128"},
    },
    # The same per workspace.
    "owners-workspaces": {
        "workspaces": [
            {
                "name": "prod",
                "existingSecret": "key-prod",
                "labels": {"team": "support"},
                "thresholds": {"warning": "14d"},
                "discover": {"tags": ["customer-facing"], "labels_from_tags": {"team": "team:"}},
                "proxy": "https://user:secret@proxy.egress.svc:3128",
                "agents": [{"id": "agent_pay", "labels": {"team": "payments"}}],
            },
            {
                "name": "eu",
                "base_url": "https://api.eu.residency.elevenlabs.io",
                "existingSecret": "key-eu",
                "agents": [{"id": "agent_eu", "thresholds": {"warning": "21d", "critical": "2d"}}],
            },
        ],
    },
    # A locked-down cluster: egress through a proxy with a private CA, pods labelled for it,
    # alerts routed on two owner labels.
    "egress": {
        "extraEnv": [
            {"name": "HTTPS_PROXY", "value": "http://proxy.egress.svc:3128"},
            {"name": "NO_PROXY", "value": ".svc,.cluster.local"},
            {
                "name": "PROXY_NOTE",
                "valueFrom": {"configMapKeyRef": {"name": "proxy", "key": "note"}},
            },
        ],
        "extraVolumes": [{"name": "corp-ca", "configMap": {"name": "corp-ca-bundle"}}],
        "extraVolumeMounts": [{"name": "corp-ca", "mountPath": "/etc/ssl/corp", "readOnly": True}],
        "podLabels": {"egress.example.com/proxy": "allowed", "team": "platform"},
        "prometheusRule": {"ownerLabels": ["team", "env"]},
        "networkPolicy": {
            "extraEgress": [
                {
                    "to": [{"namespaceSelector": {"matchLabels": {"name": "egress"}}}],
                    "ports": [{"port": 3128, "protocol": "TCP"}],
                }
            ]
        },
    },
}


def chart() -> helm_python.Chart:
    return helm_python.Chart.load(CHART_DIR)


def render(values: dict[str, Any]) -> list[Manifest]:
    files = chart().render(values, name=RELEASE, namespace=NAMESPACE)
    documents: list[Manifest] = []
    for path, text in sorted(files.items()):
        if path.endswith(".yaml"):
            documents.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return documents


@pytest.fixture(scope="module", params=list(VALUE_SETS))
def case(request: pytest.FixtureRequest) -> tuple[str, list[Manifest]]:
    name: str = request.param
    return name, render(VALUE_SETS[name])


@pytest.fixture(scope="module")
def default() -> list[Manifest]:
    return render({})


@pytest.fixture(scope="module")
def sharded() -> list[Manifest]:
    return render(VALUE_SETS["shards"])


def _all(rendered: list[Manifest], kind: str) -> list[Manifest]:
    return [doc for doc in rendered if doc["kind"] == kind]


def _one(rendered: list[Manifest], kind: str) -> Manifest:
    found = _all(rendered, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def _workload(rendered: list[Manifest]) -> Manifest:
    (workload,) = [doc for doc in rendered if doc["kind"] in {"Deployment", "StatefulSet"}]
    return workload


def _pod(rendered: list[Manifest]) -> Manifest:
    pod: Manifest = _workload(rendered)["spec"]["template"]["spec"]
    return pod


def _container(rendered: list[Manifest]) -> Manifest:
    (container,) = _pod(rendered)["containers"]
    result: Manifest = container
    return result


def _config_text(rendered: list[Manifest]) -> str:
    (configmap,) = [doc for doc in _all(rendered, "ConfigMap") if "config.yaml" in doc["data"]]
    text: str = configmap["data"]["config.yaml"]
    return text


def _rule(rendered: list[Manifest], alert: str) -> Manifest:
    groups = _one(rendered, "PrometheusRule")["spec"]["groups"]
    (rule,) = [r for g in groups for r in g["rules"] if r.get("alert") == alert]
    result: Manifest = rule
    return result


def _generator() -> ModuleType:
    return rules_generator()


# --- Helm's own checks ---------------------------------------------------------------------


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_helm_lint_finds_nothing_wrong(name: str) -> None:
    report = helm_python.lint(CHART_DIR, VALUE_SETS[name], strict=True, namespace=NAMESPACE)
    assert report["errors"] == [], report
    # Severity 2 is a warning, 3 an error; the one info (no icon) is left.
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], report


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"shards": 0}, "/shards"),
        ({"shards": "3"}, "/shards"),
        ({"thresholds": {"warning": "7 days", "critical": "1d"}}, "/thresholds/warning"),
        ({"thresholds": {"warning": "1h30m", "critical": "1h"}}, "/thresholds/warning"),
        ({"thresholds": {"critical": None}}, "/thresholds"),
        ({"thersholds": {"warning": "7d", "critical": "1d"}}, "thersholds"),
        ({"discover": False}, "/agents"),
        ({"agents": [{"name": "no id"}]}, "/agents/0"),
        ({"elevenlabs": {"base_url": "api.elevenlabs.io"}}, "/elevenlabs/base_url"),
        ({"elevenlabs": {"api_key_env": "ELEVENLABS_API_KEY"}}, "api_key_env"),
        ({"logging": {"level": "verbose"}}, "/logging/level"),
        ({"tls": {"enabled": True}}, "/tls/existingSecret"),
        ({"apiKey": {"create": True}}, "/apiKey"),
        ({"apiKey": {"value": "sk_not_created"}}, "/apiKey/value"),
        ({"workspaces": [{"name": "prod", "discover": True}]}, "existingSecret"),
        ({"image": {"digest": "latest"}}, "/image/digest"),
        ({"serviceMonitor": {"interval": 60}}, "/serviceMonitor/interval"),
        ({"prometheusRule": {"ownerLabels": ["job"]}}, "/prometheusRule/ownerLabels/0"),
        ({"prometheusRule": {"ownerLabels": ["team", "team"]}}, "/prometheusRule/ownerLabels"),
        ({"prometheusRule": {"ownerLabels": ["te-am"]}}, "/prometheusRule/ownerLabels/0"),
        ({"prometheusRule": {"ownerLabels": ["__team"]}}, "/prometheusRule/ownerLabels/0"),
        ({"prometheusRule": {"ownerLabels": "team"}}, "/prometheusRule/ownerLabels"),
        ({"extraEnv": [{"name": "MONITOR_CONFIG", "value": "/x"}]}, "/extraEnv/0/name"),
        ({"extraEnv": [{"name": "HTTPS_PROXY", "value": 3128}]}, "/extraEnv/0/value"),
        ({"extraEnv": [{"name": "HTTPS_PROXY", "valeu": "x"}]}, "valeu"),
        ({"extraEnv": {"HTTPS_PROXY": "http://proxy:3128"}}, "/extraEnv"),
        ({"extraVolumes": [{"name": "tmp", "emptyDir": {}}]}, "/extraVolumes/0/name"),
        ({"extraVolumes": [{"configMap": {"name": "ca"}}]}, "/extraVolumes/0"),
        ({"extraVolumeMounts": [{"name": "ca", "mountPath": "/tmp"}]}, "/extraVolumeMounts/0"),
        (
            {"extraVolumeMounts": [{"name": "ca", "mountPath": "/var/run/secrets"}]},
            "/extraVolumeMounts/0/mountPath",
        ),
        (
            {"extraVolumeMounts": [{"name": "ca", "mountPath": "etc/ssl"}]},
            "/extraVolumeMounts/0/mountPath",
        ),
        ({"extraVolumeMounts": [{"name": "ca"}]}, "/extraVolumeMounts/0"),
        ({"podLabels": {"app.kubernetes.io/name": "x"}}, "app.kubernetes.io/name"),
        ({"podLabels": {"team": "pay ments"}}, "/podLabels/team"),
        # In the pod a relative path would point into the config's ConfigMap.
        ({"elevenlabs": {"ca_file": "relative/ca.pem"}}, "/elevenlabs/ca_file"),
    ],
)
def test_schema_refuses_bad_values(values: dict[str, Any], where: str) -> None:
    with pytest.raises(helm_python.HelmValuesError) as refused:
        chart().validate_schema(values)
    assert where in str(refused.value)
    # An install renders nothing from them either.
    with pytest.raises(helm_python.HelmValuesError):
        chart().render(values, name=RELEASE, namespace=NAMESPACE)


@pytest.mark.parametrize(
    "api_key",
    [
        {"value": "sk_canary_0123456789abcdef"},  # a key given without create: true
        {"create": True, "value": "sk_canary_0123456789abcdef", "secretKey": "bad key"},
        {"create": True, "value": "sk_canary_0123456789abcdef", "existingSecret": 5},
    ],
)
def test_schema_refusal_never_echoes_a_key(api_key: dict[str, Any]) -> None:
    with pytest.raises(helm_python.HelmValuesError) as refused:
        chart().validate_schema({"apiKey": api_key})
    assert "sk_canary" not in str(refused.value)


@pytest.mark.parametrize(
    "proxy",
    [
        "socks5://user:s3cr3t_canary@proxy:1080",
        "http://user:s3cr3t_canary@proxy:3128/path",
        "http://user:s3cr3t_canary@proxy:3128 ",
    ],
)
def test_schema_refusal_never_echoes_a_proxy_password(proxy: str) -> None:
    for values in (
        {"elevenlabs": {"proxy": proxy}},
        {"workspaces": [{"name": "w", "existingSecret": "k", "discover": True, "proxy": proxy}]},
    ):
        with pytest.raises(helm_python.HelmValuesError) as refused:
            chart().validate_schema(values)
        assert "proxy" in str(refused.value)
        assert "s3cr3t_canary" not in str(refused.value)


def test_warning_must_be_above_critical() -> None:
    with pytest.raises(helm_python.HelmRenderError) as refused:
        render({"thresholds": {"warning": "1d", "critical": "2d"}})
    assert "thresholds.warning (1d) must be greater than thresholds.critical (2d)" in str(
        refused.value
    )


# Values the monitor refuses, and where the chart refuses them: the schema (at the path given)
# or, for what a JSON schema cannot compare (500ms, 2d, a repeated id), the render (the message).
REFUSED: list[tuple[dict[str, Any], str, str]] = [
    ({"agents": [{"id": "../etc"}]}, "schema", "/agents/0/id"),
    ({"agents": [{"id": ".."}]}, "schema", "/agents/0/id"),
    ({"agents": [{"id": "a/b"}]}, "schema", "/agents/0/id"),
    ({"agents": [{"id": "a" * 257}]}, "schema", "/agents/0/id"),
    ({"agents": [{"id": "a", "name": "n" * 257}]}, "schema", "/agents/0/name"),
    (
        {"workspaces": [{"name": "w", "existingSecret": "k", "agents": [{"id": "../etc"}]}]},
        "schema",
        "/workspaces/0/agents/0/id",
    ),
    ({"poll": {"interval": "0s"}}, "schema", "/poll/interval"),
    ({"poll": {"interval": 0}}, "schema", "/poll/interval"),
    ({"poll": {"interval": 0.5}}, "schema", "/poll/interval"),
    ({"poll": {"interval": 86401}}, "schema", "/poll/interval"),
    ({"poll": {"discovery_interval": "0"}}, "schema", "/poll/discovery_interval"),
    ({"poll": {"jitter": -1}}, "schema", "/poll/jitter"),
    ({"alerts": {"repeat_interval": 0}}, "schema", "/alerts/repeat_interval"),
    ({"alerts": {"repeat_interval": "0m"}}, "schema", "/alerts/repeat_interval"),
    ({"alerts": {"repeat_interval": 2592001}}, "schema", "/alerts/repeat_interval"),
    ({"elevenlabs": {"timeout": 0}}, "schema", "/elevenlabs/timeout"),
    ({"elevenlabs": {"timeout": "0s"}}, "schema", "/elevenlabs/timeout"),
    ({"elevenlabs": {"timeout": 301}}, "schema", "/elevenlabs/timeout"),
    (
        {"elevenlabs": {"max_requests_per_second": 1e300}},
        "schema",
        "/elevenlabs/max_requests_per_second",
    ),
    (
        {"elevenlabs": {"max_requests_per_second": 0.0001}},
        "schema",
        "/elevenlabs/max_requests_per_second",
    ),
    (
        {"elevenlabs": {"max_requests_per_second": True}},
        "schema",
        "/elevenlabs/max_requests_per_second",
    ),
    ({"elevenlabs": {"max_concurrency": 0}}, "schema", "/elevenlabs/max_concurrency"),
    ({"thresholds": {"warning": 315360001, "critical": 1}}, "schema", "/thresholds/warning"),
    (
        {"workspaces": [{"name": "w", "existingSecret": "k", "discover": True, "timeout": 0}]},
        "schema",
        "/workspaces/0/timeout",
    ),
    ({"poll": {"interval": "500ms"}}, "render", "poll.interval (500ms) must be at least 1s"),
    ({"poll": {"interval": "2d"}}, "render", "poll.interval (2d) must be at most 1d"),
    (
        {"poll": {"discovery_interval": "1d1s"}},
        "render",
        "poll.discovery_interval (1d1s) must be at most 1d",
    ),
    (
        {"poll": {"jitter": "5m"}},
        "render",
        "poll.jitter (5m) must be shorter than poll.interval (5m)",
    ),
    (
        {"alerts": {"repeat_interval": "31d"}},
        "render",
        "alerts.repeat_interval (31d) must be at most 30d",
    ),
    (
        {"alerts": {"repeat_interval": "999ms"}},
        "render",
        "alerts.repeat_interval (999ms) must be at least 1s",
    ),
    ({"elevenlabs": {"timeout": "1h"}}, "render", "elevenlabs.timeout (1h) must be at most 5m"),
    (
        {"thresholds": {"warning": "5000000w", "critical": "1d"}},
        "render",
        "thresholds.warning (5000000w) must be at most 3650d",
    ),
    (
        {"agents": [{"id": "agent_1"}, {"id": "agent_1", "name": "dup"}]},
        "render",
        'agents[1]: agent id "agent_1" is listed twice',
    ),
    (
        {
            "workspaces": [
                {"name": "w", "existingSecret": "k", "agents": [{"id": "a"}, {"id": "a"}]}
            ]
        },
        "render",
        'workspaces[0].agents[1]: agent id "a" is listed twice',
    ),
    (
        {"workspaces": [{"name": "w", "existingSecret": "k", "discover": True}] * 2},
        "render",
        'workspaces[1]: workspace name "w" is used twice',
    ),
    (
        {"workspaces": [{"name": "w", "existingSecret": "k", "discover": True, "timeout": "6m"}]},
        "render",
        "workspaces[0].timeout (6m) must be at most 5m",
    ),
    # Owners and policy (issue 17).
    ({"labels": {"job": "x"}}, "schema", "'job'"),
    ({"labels": {"team": 7}}, "schema", "/labels/team"),
    ({"agents": [{"id": "a", "labels": {"__x": "1"}}]}, "schema", "'__x'"),
    (
        {"agents": [{"id": "a", "labels": {"team": "pay\nments"}}]},
        "schema",
        "/agents/0/labels/team",
    ),
    ({"agents": [{"id": "a", "labels": {"team": "p" * 257}}]}, "schema", "/agents/0/labels/team"),
    ({"agents": [{"id": "a", "thresholds": {"warming": "1d"}}]}, "schema", "warming"),
    ({"agents": [{"id": "a", "thresholds": {"warning": "0s"}}]}, "schema", "/agents/0/thresholds"),
    ({"discover": {"created_by": "some one"}}, "schema", "/discover/created_by"),
    ({"discover": {"tags": [""]}}, "schema", "/discover/tags/0"),
    ({"discover": {"labels_from_tags": {"agent_id": "id:"}}}, "schema", "'agent_id'"),
    ({"discover": {"tagz": ["a"]}}, "schema", "tagz"),
    # Usage and exposure (issue 19).
    ({"discover": {"archived": "maybe"}}, "schema", "/discover/archived"),
    ({"usage": {"active_window": 1800}}, "schema", "/usage/active_window"),
    ({"usage": {"active_window": "7 days"}}, "schema", "/usage/active_window"),
    (
        {"usage": {"active_window": "30m"}},
        "render",
        "usage.active_window (30m) must be at least 1h",
    ),
    (
        {"usage": {"active_window": "3651d"}},
        "render",
        "usage.active_window (3651d) must be at most 3650d",
    ),
    ({"elevenlabs": {"proxy": "socks5://proxy:1080"}}, "schema", "/elevenlabs/proxy"),
    ({"elevenlabs": {"proxy": "http://proxy:3128/path"}}, "schema", "/elevenlabs/proxy"),
    (
        {"agents": [{"id": "a", "thresholds": {"warning": "1d", "critical": "2d"}}]},
        "render",
        "agents[0].thresholds: warning (1d) must be greater than critical (2d)",
    ),
    (
        {"agents": [{"id": "a", "thresholds": {"critical": "8d"}}]},
        "render",
        "agents[0].thresholds: warning (7d, from thresholds) must be greater than critical (8d)",
    ),
    (
        {"agents": [{"id": "a", "thresholds": {"warning": "3651d"}}]},
        "render",
        "agents[0].thresholds.warning (3651d) must be at most 3650d",
    ),
    (
        {
            "workspaces": [
                {
                    "name": "w",
                    "existingSecret": "k",
                    "thresholds": {"warning": "30d"},
                    "agents": [{"id": "a", "thresholds": {"critical": "40d"}}],
                }
            ]
        },
        "render",
        "workspaces[0].agents[0].thresholds: warning (30d, from workspaces[0].thresholds) "
        "must be greater than critical (40d)",
    ),
    (
        {
            "workspaces": [
                {
                    "name": "w",
                    "existingSecret": "k",
                    "discover": True,
                    "thresholds": {"warning": "12h"},
                }
            ]
        },
        "render",
        "workspaces[0].thresholds: warning (12h) must be greater than critical (1d, from thresholds)",
    ),
    (
        {
            "labels": {"team": "support"},
            "workspaces": [{"name": "w", "existingSecret": "k", "discover": True}],
        },
        "render",
        "labels: with workspaces, set labels under each of workspaces[] instead",
    ),
]


def _as_config(values: dict[str, Any]) -> str:
    """The config the chart would render from these values, were they not refused: the
    default render with the monitor's own keys of the values laid over it."""
    config = yaml.safe_load(_config_text(render({})))
    for key, value in values.items():
        if key == "workspaces":
            for single in ("elevenlabs", "agents", "discover"):
                config.pop(single, None)
            config["workspaces"] = [
                {k: v for k, v in w.items() if k not in {"existingSecret", "secretKey"}}
                for w in value
            ]
        elif isinstance(value, dict):
            config[key] = {**config.get(key, {}), **value}
        else:
            config[key] = value
    text: str = yaml.safe_dump(config)
    return text


@pytest.mark.parametrize(("values", "stage", "where"), REFUSED)
def test_the_chart_refuses_what_the_monitor_refuses(
    values: dict[str, Any], stage: str, where: str
) -> None:
    # The monitor refuses it: taken as it is, the pod would crash-loop.
    with pytest.raises(ConfigError):
        parse_config(_as_config(values))
    if stage == "schema":
        with pytest.raises(helm_python.HelmValuesError) as refused:
            chart().validate_schema(values)
        assert where in str(refused.value)
    else:
        chart().validate_schema(values)
        with pytest.raises(helm_python.HelmRenderError) as failed:
            render(values)
        assert where in str(failed.value)
        assert len(str(failed.value).splitlines()) == 1


# --- every value set: objects, pod security, config ----------------------------------------


def test_kubectl_reads_every_object(case: tuple[str, list[Manifest]], tmp_path: Path) -> None:
    kubectl = require_tool("kubectl")
    _, rendered = case
    (tmp_path / "chart.yaml").write_text(yaml.safe_dump_all(rendered), encoding="utf-8")
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"namespace: {NAMESPACE}\nresources: [chart.yaml]\n",
        encoding="utf-8",
    )
    result = run([kubectl, "kustomize", str(tmp_path)])
    assert result.returncode == 0, output(result)
    read = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert sorted((d["kind"], d["metadata"]["name"]) for d in read) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in rendered
    )
    for doc in rendered:
        # Namespace-agnostic: `helm install -n` (or kubectl -n) decides.
        assert "namespace" not in doc["metadata"], doc["kind"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == JOB


# The chart needs 1.28 (the pod-index label); the schemas of the newest release are checked too.
KUBERNETES_VERSIONS = ["1.28.0", kubernetes_validate.latest_version()]
CUSTOM_RESOURCES = {"ServiceMonitor", "PrometheusRule"}  # their CRDs' schemas are not bundled


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_objects_match_the_kubernetes_schemas(
    case: tuple[str, list[Manifest]], version: str
) -> None:
    _, rendered = case
    for doc in rendered:
        if doc["kind"] in CUSTOM_RESOURCES:
            continue
        # strict: an unknown field (a typo in a template) is an error, as `kubectl --validate`.
        kubernetes_validate.validate(doc, version, strict=True)


def test_schema_check_catches_a_misspelt_field(default: list[Manifest]) -> None:
    service = copy.deepcopy(_one(default, "Service"))
    service["spec"]["publishNotReadyAddress"] = service["spec"].pop("publishNotReadyAddresses")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, KUBERNETES_VERSIONS[0], strict=True)


def test_pods_meet_the_restricted_standard(case: tuple[str, list[Manifest]]) -> None:
    _, rendered = case
    pod = _pod(rendered)
    assert_restricted(pod, _container(rendered))
    account = _one(rendered, "ServiceAccount")
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert account["automountServiceAccountToken"] is False
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in _container(rendered)["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    resources = _container(rendered)["resources"]
    for section in ("requests", "limits"):
        assert set(resources[section]) == {"cpu", "memory"}, section


def test_config_is_valid_and_the_key_is_a_mounted_file(
    case: tuple[str, list[Manifest]], tmp_path: Path
) -> None:
    name, rendered = case
    # The monitor's own loader, as validate-config runs it on the mounted file.
    path = tmp_path / f"{name}.yaml"  # a problem names the value set
    path.write_text(_config_text(rendered), encoding="utf-8")
    config = load_config(path)
    pod = _pod(rendered)
    container = _container(rendered)
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    env = {item["name"]: item for item in container["env"]}
    assert env["MONITOR_CONFIG"]["value"] == "/etc/elevenlabs-link-monitor/config.yaml"
    config_volume = volumes[mounts["/etc/elevenlabs-link-monitor"]["name"]]
    assert config_volume["configMap"]["name"].endswith("-config")
    # The key reaches the process only as a file, never through the environment.
    assert "envFrom" not in container
    assert all("secretKeyRef" not in item.get("valueFrom", {}) for item in env.values())
    for workspace in config.resolved_workspaces():
        assert workspace.api_key_file is not None, workspace.name
        key_file = workspace.api_key_file
        mount = mounts[str(key_file.parent)]
        # A directory mount, not subPath: the kubelet swaps a rotated Secret in place.
        assert mount["readOnly"] is True
        assert "subPath" not in mount
        secret = volumes[mount["name"]]["secret"]
        assert secret["items"] == [{"key": key_file.name, "path": key_file.name}]
        assert secret["defaultMode"] & 0o007 == 0, "the key file must not be world-readable"
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"metrics": config.server.port}


def test_config_follows_the_values() -> None:
    rendered = render(
        {
            "discover": False,
            "agents": [{"id": "agent_01", "name": "support-bot"}],
            "poll": {"interval": "10m"},
            "alerts": {"repeat_interval": "2h"},
            "logging": {"level": "debug"},
            "elevenlabs": {"base_url": "https://api.us.elevenlabs.io", "max_concurrency": 4},
            "statusPage": False,
            "port": 9900,
        }
    )
    config = parse_config(_config_text(rendered))
    (workspace,) = config.resolved_workspaces()
    assert workspace.discover is False
    assert [(a.id, a.name) for a in workspace.agents] == [("agent_01", "support-bot")]
    assert workspace.base_url == "https://api.us.elevenlabs.io"
    assert workspace.max_concurrency == 4
    assert str(workspace.api_key_file) == f"{KEY_DIR}/api-key"
    assert config.poll.interval == 600
    assert config.alerts.repeat_interval == 7200
    assert config.logging.level == "debug"
    assert config.server.status_page is False
    assert config.server.port == 9900
    assert _one(rendered, "Service")["spec"]["ports"][0]["port"] == 9900


def test_workspaces_each_get_their_own_key_file() -> None:
    rendered = render(VALUE_SETS["workspaces"])
    config = parse_config(_config_text(rendered))
    files = {w.name: str(w.api_key_file) for w in config.resolved_workspaces()}
    assert files == {"prod": f"{KEY_DIR}/prod/api-key", "eu": f"{KEY_DIR}/eu/token"}
    secrets = {v["secret"]["secretName"] for v in _pod(rendered)["volumes"] if "secret" in v}
    assert secrets == {"key-prod", "key-eu"}


def test_a_config_change_rolls_the_pods(default: list[Manifest]) -> None:
    annotation = "checksum/config"
    before = _workload(default)["spec"]["template"]["metadata"]["annotations"][annotation]
    changed = render({"poll": {"interval": "10m"}})
    after = _workload(changed)["spec"]["template"]["metadata"]["annotations"][annotation]
    assert before != after


def test_chart_created_secret() -> None:
    canary = "sk_canary_0123456789abcdef"
    rendered = render({"apiKey": {"create": True, "value": canary + "\n"}})
    (secret,) = _all(rendered, "Secret")
    assert base64.b64decode(secret["data"]["api-key"]).decode() == canary
    (volume,) = [v for v in _pod(rendered)["volumes"] if v["name"] == "api-key"]
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    # Only the Secret itself carries the key.
    for doc in rendered:
        if doc is not secret:
            assert canary not in json.dumps(doc)
    assert _all(render({}), "Secret") == []


# --- single replica, TLS, shards -------------------------------------------------------------


def test_default_is_one_recreated_replica(default: list[Manifest]) -> None:
    kinds = sorted(doc["kind"] for doc in default)
    assert kinds == [
        "ConfigMap",
        "ConfigMap",
        "Deployment",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "PrometheusRule",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
    ]
    deployment = _one(default, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    container = _container(default)
    assert container["args"] == ["run"]
    name, _, tag = container["image"].rpartition(":")
    assert name == "ghcr.io/elevenlabs-link-monitor/elevenlabs-link-monitor"
    assert tag == chart().metadata["appVersion"]


@pytest.mark.parametrize(("name", "scheme"), [("default", "HTTP"), ("tls", "HTTPS")])
def test_probes_and_scrapes_follow_tls(name: str, scheme: str) -> None:
    rendered = render(VALUE_SETS[name])
    container = _container(rendered)
    assert container["livenessProbe"]["httpGet"] == {
        "path": "/healthz",
        "port": "metrics",
        "scheme": scheme,
    }
    assert container["readinessProbe"]["httpGet"] == {
        "path": "/readyz",
        "port": "metrics",
        "scheme": scheme,
    }
    (endpoint,) = _one(rendered, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["scheme"] == scheme.lower()
    config = parse_config(_config_text(rendered))
    if scheme == "HTTP":
        assert config.server.tls is None
        assert "tlsConfig" not in endpoint
        return
    assert config.server.tls is not None
    assert str(config.server.tls.cert_file) == f"{TLS_DIR}/tls.crt"
    assert str(config.server.tls.key_file) == f"{TLS_DIR}/tls.key"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in _pod(rendered)["volumes"]}
    tls_volume = volumes[mounts[TLS_DIR]["name"]]
    assert tls_volume["secret"]["secretName"] == "elevenlabs-link-monitor-tls"
    assert endpoint["tlsConfig"] == {
        "ca": {"secret": {"name": "elevenlabs-link-monitor-tls", "key": "ca.crt"}},
        "serverName": f"{RELEASE}.{NAMESPACE}.svc",
    }


def test_shards_are_a_statefulset_taking_the_shard_from_the_ordinal(
    sharded: list[Manifest],
) -> None:
    assert _all(sharded, "Deployment") == []
    statefulset = _one(sharded, "StatefulSet")
    spec = statefulset["spec"]
    assert spec["replicas"] == 3
    assert spec["podManagementPolicy"] == "Parallel"
    assert "ordinals" not in spec, "the shard is the ordinal, so ordinals start at 0"
    container = _container(sharded)
    env = {item["name"]: item for item in container["env"]}
    assert env["POD_INDEX"]["valueFrom"] == {"fieldRef": {"fieldPath": POD_INDEX_FIELD}}
    assert "command" not in container, "the image's ENTRYPOINT stays in charge"
    args = container["args"]
    assert args[:2] == ["run", "--shard"]

    def shard_of(ordinal: str) -> Shard | None:
        return parse_shard(args[2].replace("$(POD_INDEX)", ordinal))

    # Kubernetes expands $(POD_INDEX); every ordinal gets its own shard of the same count.
    assert [shard_of(str(i)) for i in range(3)] == [Shard(i, 3) for i in range(3)]
    # An extra replica, or a cluster without the pod-index label, is a config error.
    for wrong in ("3", ""):
        with pytest.raises(ConfigError):
            shard_of(wrong)
    spread = _pod(sharded)["topologySpreadConstraints"]
    assert spread[0]["topologyKey"] == "kubernetes.io/hostname"
    assert spread[0]["labelSelector"]["matchLabels"].items() <= (
        spec["template"]["metadata"]["labels"].items()
    )


@pytest.mark.parametrize("shards", [2, 5])
def test_replicas_and_shard_count_come_from_one_value(shards: int) -> None:
    rendered = render({"shards": shards})
    assert _one(rendered, "StatefulSet")["spec"]["replicas"] == shards
    assert _container(rendered)["args"][2] == f"$(POD_INDEX)/{shards}"


def test_only_the_exporter_service_is_scraped(sharded: list[Manifest]) -> None:
    statefulset = _one(sharded, "StatefulSet")
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    monitor = _one(sharded, "ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = _all(sharded, "Service")
    selected = [s for s in services if selector.items() <= s["metadata"]["labels"].items()]
    assert len(selected) == 1, "each pod must be scraped exactly once"
    (service,) = selected
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == JOB
    (governing,) = [
        s for s in services if s["metadata"]["name"] == statefulset["spec"]["serviceName"]
    ]
    assert governing["spec"]["clusterIP"] == "None"


# --- Prometheus Operator, Grafana, network, disruption -----------------------------------------


def test_operator_objects_take_the_release_label() -> None:
    rendered = render(VALUE_SETS["workspaces"])
    for kind in ("ServiceMonitor", "PrometheusRule"):
        labels = _one(rendered, kind)["metadata"]["labels"]
        assert labels["release"] == "kube-prometheus-stack", kind
    rendered = render({"serviceMonitor": {"enabled": False}, "prometheusRule": {"enabled": False}})
    assert _all(rendered, "ServiceMonitor") == _all(rendered, "PrometheusRule") == []


def test_scrape_and_rule_intervals(default: list[Manifest]) -> None:
    (endpoint,) = _one(default, "ServiceMonitor")["spec"]["endpoints"]
    assert (endpoint["interval"], endpoint["scrapeTimeout"]) == ("1m", "10s")
    assert all("interval" not in g for g in _one(default, "PrometheusRule")["spec"]["groups"])
    rendered = render({"prometheusRule": {"interval": "30s"}, "serviceMonitor": {"interval": "2m"}})
    assert {g["interval"] for g in _one(rendered, "PrometheusRule")["spec"]["groups"]} == {"30s"}
    assert _one(rendered, "ServiceMonitor")["spec"]["endpoints"][0]["interval"] == "2m"


def test_promtool_accepts_the_rendered_rules(
    case: tuple[str, list[Manifest]], tmp_path: Path
) -> None:
    promtool = require_tool("promtool")
    _, rendered = case
    groups = _one(rendered, "PrometheusRule")["spec"]["groups"]
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": groups}), encoding="utf-8")
    result = run([promtool, "check", "rules", str(path)])
    assert result.returncode == 0, output(result)


def test_default_rules_are_rules_yml(default: list[Manifest], tmp_path: Path) -> None:
    """With the default values the chart's rules are rules.yml's (both rendered from the
    mixin), runbook URLs and thresholds alike, and pass its unit tests."""
    promtool = require_tool("promtool")
    groups = _one(default, "PrometheusRule")["spec"]["groups"]
    source = yaml.safe_load((PROMETHEUS_DIR / "rules.yml").read_text(encoding="utf-8"))
    assert groups == source["groups"]
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": groups}), encoding="utf-8")
    shutil.copy(PROMETHEUS_DIR / "rules_test.yml", tmp_path / "rules_test.yml")
    result = run([promtool, "test", "rules", "rules_test.yml"], cwd=tmp_path)
    assert result.returncode == 0, output(result)


@pytest.mark.parametrize(
    ("thresholds", "warning", "critical"),
    [
        ({"warning": "7d", "critical": "1d"}, 7 * DAY, DAY),
        ({"warning": "3d", "critical": "12h"}, 3 * DAY, 12 * 3600),
        ({"warning": "2w", "critical": 172800}, 14 * DAY, 2 * DAY),
    ],
)
def test_thresholds_are_the_same_numbers_in_config_and_rules(
    thresholds: dict[str, Any], warning: int, critical: int
) -> None:
    rendered = render({"thresholds": thresholds})
    config = parse_config(_config_text(rendered))
    assert (config.thresholds.warning, config.thresholds.critical) == (warning, critical)

    # The defaults that stand in where the monitor exports no thresholds of its own.
    groups = _one(rendered, "PrometheusRule")["spec"]["groups"]
    (defaults,) = [r for g in groups for r in g["rules"] if r.get("record") == THRESHOLD_RULE]
    assert re.findall(r"\+ (\d+),", defaults["expr"]) == [str(warning), str(critical)]
    for alert in ("ElevenLabsAgentLinkExpiringSoon", "ElevenLabsAgentLinkExpiryCritical"):
        rule = _rule(rendered, alert)
        assert THRESHOLD_RULE in rule["expr"], alert
        assert not re.search(r"[<>]=? \d", rule["expr"].replace("> 0\n", "")), alert
        # The text says each agent's own threshold, looked up when the alert fires.
        assert f"{THRESHOLD_RULE}{{job=%q" in rule["annotations"]["description"], alert
        # Prometheus' own templates reach the rule verbatim.
        assert "{{ $labels.agent_id }}" in rule["annotations"]["summary"], alert


@pytest.mark.parametrize(
    ("window", "seconds"),
    [({}, 7 * DAY), ({"active_window": "14d"}, 14 * DAY), ({"active_window": 7200}, 7200)],
)
def test_the_active_window_is_the_same_in_config_and_rules(
    window: dict[str, Any], seconds: int
) -> None:
    """usage.active_window is the monitor's (its status page's ?idle=1) and the rules' idle
    verdict, which weighs the expiry alerts: one value, so the two agree."""
    rendered = render({"usage": window} if window else {})
    config = parse_config(_config_text(rendered))
    assert config.usage.active_window == seconds
    groups = _one(rendered, "PrometheusRule")["spec"]["groups"]
    (idle,) = [r for g in groups for r in g["rules"] if r.get("record") == IDLE_RULE]
    assert re.findall(r"> bool (\d+)", idle["expr"]) == [str(seconds)] * 2


def test_every_alert_has_a_runbook_section(default: list[Manifest]) -> None:
    base = chart().values["prometheusRule"]["runbookBaseUrl"]
    assert base.endswith("/docs/runbook.md")
    runbook = (REPO / "docs" / "runbook.md").read_text(encoding="utf-8")
    headings = {line[3:].strip().lower() for line in runbook.splitlines() if line.startswith("## ")}
    groups = _one(default, "PrometheusRule")["spec"]["groups"]
    alerts = [r for g in groups for r in g["rules"] if "alert" in r]
    assert alerts
    for rule in alerts:
        url = rule["annotations"]["runbook_url"]
        assert url == f"{base}#{rule['alert'].lower()}"
        assert rule["alert"].lower() in headings, f"docs/runbook.md: no ## {rule['alert']}"


def test_dashboard_configmap_for_the_grafana_sidecar(default: list[Manifest]) -> None:
    (configmap,) = [
        d for d in _all(default, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")
    ]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    (text,) = configmap["data"].values()
    source = DEPLOY / "grafana" / "dashboards" / "elevenlabs-link-monitor.json"
    assert json.loads(text) == json.loads(source.read_text(encoding="utf-8"))
    rendered = render({"grafanaDashboard": {"labels": {"grafana_dashboard": "elm"}}})
    labels = [d["metadata"]["labels"] for d in _all(rendered, "ConfigMap")]
    assert sum(labels_.get("grafana_dashboard") == "elm" for labels_ in labels) == 1
    rendered = render({"grafanaDashboard": {"enabled": False}})
    assert len(_all(rendered, "ConfigMap")) == 1


def test_network_policy_admits_the_port_and_lets_out_dns_and_https(
    default: list[Manifest],
) -> None:
    policy = _one(default, "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["podSelector"]["matchLabels"].items() <= (
        _workload(default)["spec"]["template"]["metadata"]["labels"].items()
    )
    (ingress,) = policy["ingress"]
    assert ingress["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert "from" not in ingress
    egress_ports = sorted(
        (p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]
    )
    assert egress_ports == [(53, "TCP"), (53, "UDP"), (443, "TCP")]
    assert all("to" not in rule for rule in policy["egress"])

    limited = _one(render(VALUE_SETS["workspaces"]), "NetworkPolicy")["spec"]
    assert limited["ingress"][0]["from"] == VALUE_SETS["workspaces"]["networkPolicy"]["ingressFrom"]


def test_disruption_budget_selects_the_pods(sharded: list[Manifest]) -> None:
    budget = _one(sharded, "PodDisruptionBudget")["spec"]
    assert budget["maxUnavailable"] == 1
    assert budget["selector"]["matchLabels"].items() <= (
        _workload(sharded)["spec"]["template"]["metadata"]["labels"].items()
    )


# --- egress (proxy, private CA), pod labels, owner labels ------------------------------------


def test_extra_env_volumes_and_pod_labels_reach_the_pod() -> None:
    values = VALUE_SETS["egress"]
    rendered = render(values)
    container = _container(rendered)
    env = container["env"]
    # The chart's own first, then extraEnv as given (valueFrom included).
    assert env[0]["name"] == "MONITOR_CONFIG"
    assert env[1:] == values["extraEnv"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/etc/ssl/corp"] == values["extraVolumeMounts"][0]
    assert mounts["/tmp"]["name"] == "tmp"  # the chart's own stay
    volumes = {v["name"]: v for v in _pod(rendered)["volumes"]}
    assert volumes["corp-ca"] == values["extraVolumes"][0]
    assert {"config", "api-key", "tmp"} <= set(volumes)
    pod_labels = _workload(rendered)["spec"]["template"]["metadata"]["labels"]
    assert pod_labels.items() >= values["podLabels"].items()
    # The selector still selects the pods; the labels go on the pods only.
    selector = _workload(rendered)["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert "egress.example.com/proxy" not in _workload(rendered)["metadata"]["labels"]
    # Sharded, the StatefulSet's pods get them too, after POD_INDEX.
    sharded = render({**values, "shards": 2})
    names = [item["name"] for item in _container(sharded)["env"]]
    assert names == ["MONITOR_CONFIG", "POD_INDEX", "HTTPS_PROXY", "NO_PROXY", "PROXY_NOTE"]
    assert _one(sharded, "StatefulSet")["spec"]["template"]["metadata"]["labels"].items() >= (
        values["podLabels"].items()
    )
    # Without them nothing changes.
    assert [item["name"] for item in _container(render({}))["env"]] == ["MONITOR_CONFIG"]


def test_a_mount_of_an_unknown_volume_is_refused_in_one_line() -> None:
    values = {"extraVolumeMounts": [{"name": "corp-ca", "mountPath": "/etc/ssl/corp"}]}
    chart().validate_schema(values)
    with pytest.raises(helm_python.HelmRenderError) as refused:
        render(values)
    assert 'extraVolumeMounts[0]: volume "corp-ca" is not one of extraVolumes' in str(refused.value)
    assert len(str(refused.value).splitlines()) == 1


def test_owners_and_policy_reach_the_monitors_config() -> None:
    """labels, per-agent thresholds, a discovery filter and a proxy, as the monitor reads them."""
    config = parse_config(_config_text(render(VALUE_SETS["owners"])))
    (workspace,) = config.resolved_workspaces()
    assert workspace.labels == {"team": "support", "env": "prod"}
    agents = {agent.id: agent for agent in workspace.agents}
    assert agents["agent_pay"].labels == {"team": "payments"}
    thresholds = agents["agent_pay"].thresholds
    assert thresholds is not None
    assert (thresholds.warning, thresholds.critical) == (30 * DAY, 3 * DAY)
    discovery = workspace.discovery
    assert discovery is not None
    assert discovery.tags == ["customer-facing"]
    assert discovery.exclude_tags == ["internal"]
    assert discovery.labels_from_tags == {"team": "team:"}
    assert discovery.created_by == "@me"
    assert discovery.archived is False
    assert workspace.proxy == "http://proxy.egress.svc:3128"
    assert config.usage.active_window == 14 * DAY

    config = parse_config(_config_text(render(VALUE_SETS["owners-workspaces"])))
    prod, eu = config.resolved_workspaces()
    assert (prod.labels, prod.proxy) == (
        {"team": "support"},
        VALUE_SETS["owners-workspaces"]["workspaces"][0]["proxy"],
    )
    assert prod.discovery is not None
    assert prod.discovery.labels_from_tags == {"team": "team:"}
    assert eu.discovery is None
    # The default ({}) is discovery on, as true was.
    (workspace,) = parse_config(_config_text(render({}))).resolved_workspaces()
    assert workspace.discovery is not None


def test_a_private_ca_file_mounted_from_extra_volumes() -> None:
    values = {
        **VALUE_SETS["egress"],
        "elevenlabs": {"ca_file": "/etc/ssl/corp/ca.pem"},
    }
    rendered = render(values)
    (workspace,) = parse_config(_config_text(rendered)).resolved_workspaces()
    assert str(workspace.ca_file) == "/etc/ssl/corp/ca.pem"
    mounts = [m["mountPath"] for m in _container(rendered)["volumeMounts"]]
    assert any(str(workspace.ca_file).startswith(path + "/") for path in mounts)


def _owner_case(owner_labels: list[str]) -> tuple[list[Manifest], dict[str, Any]]:
    """The rules rendered for these owner labels, and a promtool test of a missing link whose
    agent carries team and env."""
    rendered = render({"prometheusRule": {"ownerLabels": owner_labels}})
    labels = f'job="{JOB}",workspace="default",agent_id="a_owned"'
    series = [
        {
            "series": f'elevenlabs_agent_info{{{labels},agent_name="b",team="pay",env="prod"}}',
            "values": "1x30",
        },
        {"series": f'elevenlabs_agent_link_state{{{labels},state="missing"}}', "values": "1x30"},
        {"series": f'elevenlabs_agent_link_state{{{labels},state="unknown"}}', "values": "0x30"},
    ]
    expected = {"severity": "critical", "job": JOB, "workspace": "default", "agent_id": "a_owned"}
    expected.update({label: {"team": "pay", "env": "prod"}[label] for label in owner_labels})
    test = {
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [
            {
                "eval_time": "20m",
                "alertname": "ElevenLabsAgentLinkMissing",
                "exp_alerts": [{"exp_labels": expected}],
            }
        ],
    }
    return rendered, test


@pytest.mark.parametrize("owner_labels", [["team"], ["team", "env"], ["env"], []])
def test_owner_labels_from_values_reach_the_alerts(tmp_path: Path, owner_labels: list[str]) -> None:
    promtool = require_tool("promtool")
    rendered, test = _owner_case(owner_labels)
    groups = _one(rendered, "PrometheusRule")["spec"]["groups"]
    for rule in (r for g in groups for r in g["rules"]):
        rule.pop("annotations", None)
    joins = [
        r["expr"] for g in groups for r in g["rules"] if "alert" in r and OWNER_RULE in r["expr"]
    ]
    assert len(joins) == 7
    assert all(f"group_left ({', '.join(owner_labels)})" in expr for expr in joins)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": groups}), encoding="utf-8")
    unit = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": [test]}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(unit), encoding="utf-8")
    result = run([promtool, "test", "rules", "test.yml"], cwd=tmp_path)
    assert result.returncode == 0, output(result)


# --- generated chart files -------------------------------------------------------------------------


def test_chart_files_match_their_generator() -> None:
    generator = _generator()
    for path, text in generator.outputs().items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.relative_to(REPO)} is stale: run python deploy/mixin/build.py"
        )


def test_the_chart_rules_are_the_mixins_with_the_values_in_place() -> None:
    """The mixin rendered with placeholders, each replaced by the chart's value."""
    text = _generator().render_chart_rules()
    assert "__HELM_" not in text
    assert text.count('{{ include "elm.warningSeconds" . }}') == 1
    assert text.count('{{ include "elm.criticalSeconds" . }}') == 1
    # The owner rule's by (...) lists, and each per-agent alert's group_left (...).
    assert text.count('agent_id{{ include "elm.ownerLabelsBy" . }})') == 5
    assert text.count('group_left ({{ include "elm.ownerLabels" . }})') == 7
    assert text.count("runbook_url: {{ .Values.prometheusRule.runbookBaseUrl }}#") == 17
    # The idle verdict's two comparisons (current, and last known).
    assert text.count('> bool {{ include "elm.activeWindowSeconds" . }}') == 2


def test_render_script_without_a_helm_binary(tmp_path: Path) -> None:
    script = str(HELM_DIR / "render.py")
    values = tmp_path / "values.yaml"
    values.write_text("shards: 2\n", encoding="utf-8")
    result = run([sys.executable, script, "--values", str(values), "--namespace", NAMESPACE])
    assert result.returncode == 0, output(result)
    documents = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert documents == render({"shards": 2})

    values.write_text("shards: 0\n", encoding="utf-8")
    result = run([sys.executable, script, "--values", str(values)])
    assert result.returncode == 2, output(result)
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, output(result)
    assert "/shards" in result.stderr

    # A broken values file holding a key: the error names the line, never its text.
    values.write_text('apiKey:\n  create: true\n  value: "sk_canary_0123\n', encoding="utf-8")
    result = run([sys.executable, script, "--values", str(values)])
    assert result.returncode == 2, output(result)
    assert result.stderr.startswith(f"render.py: {values}:"), output(result)
    assert "sk_canary" not in result.stderr + result.stdout


# --- the rendered config and rules at work -------------------------------------------------------


def _expiry_series(
    agent: str, expires_at: int, thresholds: tuple[int, int] | None = None
) -> list[dict[str, str]]:
    """An agent's expiry and state series; with `thresholds`, those it exports for itself."""
    labels = f'job="{JOB}",workspace="default",agent_id="{agent}"'
    series = [
        {
            "series": f"elevenlabs_agent_link_expiry_timestamp_seconds{{{labels}}}",
            "values": f"{expires_at}x40",
        },
        {"series": f'elevenlabs_agent_link_state{{{labels},state="unknown"}}', "values": "0x40"},
    ]
    for level, seconds in zip(("warning", "critical"), thresholds or (), strict=False):
        series.append(
            {
                "series": f'elevenlabs_agent_link_threshold_seconds{{{labels},level="{level}"}}',
                "values": f"{seconds}x40",
            }
        )
    return series


@pytest.mark.parametrize(
    ("thresholds", "soon", "critical"),
    [
        # Links expiring 5 days, 2 days and 6 hours after the test's time 0, and one in 20
        # days whose agent has its own thresholds (30d, 3d), whatever the chart's are.
        ({"warning": "3d", "critical": "12h"}, ["in_20d", "in_2d"], ["in_6h"]),
        ({"warning": "7d", "critical": "1d"}, ["in_20d", "in_2d", "in_5d"], ["in_6h"]),
        ({"warning": "1w", "critical": "3d"}, ["in_20d", "in_5d"], ["in_2d", "in_6h"]),
    ],
)
def test_rendered_thresholds_fire_in_prometheus(
    tmp_path: Path, thresholds: dict[str, str], soon: list[str], critical: list[str]
) -> None:
    """promtool evaluates the rendered expiry alerts: the chart's numbers decide who fires
    among agents for which a monitor (older than 0.2) exports no thresholds; an agent's own
    thresholds, exported by the monitor, win."""
    promtool = require_tool("promtool")
    groups = _one(render({"thresholds": thresholds}), "PrometheusRule")["spec"]["groups"]
    for rule in (r for g in groups for r in g["rules"]):
        rule.pop("annotations", None)  # what fires is the point here, not the text
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": groups}), encoding="utf-8")

    def expected(alert: str, agents: list[str]) -> Manifest:
        severity = "critical" if alert.endswith("Critical") else "warning"
        return {
            "eval_time": "20m",
            "alertname": alert,
            "exp_alerts": [
                {
                    "exp_labels": {
                        "severity": severity,
                        "job": JOB,
                        "workspace": "default",
                        "agent_id": agent,
                    }
                }
                for agent in agents
            ],
        }

    unit_test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    *_expiry_series("in_5d", 5 * DAY),
                    *_expiry_series("in_2d", 2 * DAY),
                    *_expiry_series("in_6h", 6 * 3600),
                    *_expiry_series("in_20d", 20 * DAY, (30 * DAY, 3 * DAY)),
                ],
                "alert_rule_test": [
                    expected("ElevenLabsAgentLinkExpiringSoon", soon),
                    expected("ElevenLabsAgentLinkExpiryCritical", critical),
                ],
            }
        ],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(unit_test), encoding="utf-8")
    result = run([promtool, "test", "rules", "test.yml"], cwd=tmp_path)
    assert result.returncode == 0, output(result)


def test_the_daemon_runs_the_rendered_config(
    standin: StandIn, start_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    """The real daemon on the chart's config: its thresholds decide the states it exports, an
    agent's own thresholds and owner labels included, as the series the rules read."""
    now = time.time()
    standin.set("in_5d", link(canary_token("in_5d"), now + 5 * DAY))
    standin.set("in_2d", link(canary_token("in_2d"), now + 2 * DAY))
    standin.set("in_6h", link(canary_token("in_6h"), now + 6 * 3600))
    standin.set("in_20d", link(canary_token("in_20d"), now + 20 * DAY))
    own = {"labels": {"team": "payments"}, "thresholds": {"warning": "30d", "critical": "3d"}}
    rendered = render(
        {
            "elevenlabs": {"base_url": standin.url, "max_retries": 0},
            "discover": False,
            "labels": {"team": "support"},
            "agents": [
                *({"id": agent} for agent in ("in_5d", "in_2d", "in_6h")),
                {"id": "in_20d", **own},
            ],
            "thresholds": {"warning": "3d", "critical": "12h"},
        }
    )
    config = yaml.safe_load(_config_text(rendered))
    key_file = tmp_path / "api-key"
    key_file.write_text(CANARY_KEY + "\n", encoding="utf-8")
    # Only what a cluster provides differs: the mounted key's path and a free loopback port.
    assert config["elevenlabs"]["api_key_file"] == f"{KEY_DIR}/api-key"
    config["elevenlabs"]["api_key_file"] = str(key_file)
    config["server"].update(host="127.0.0.1", port=0)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")

    daemon = start_daemon(path, env={"ELEVENLABS_API_KEY": ""})
    wait_until(lambda: daemon.get("/readyz")[0] == 200, what="readiness")
    states = {agent: daemon.state_of(agent) for agent in ("in_5d", "in_2d", "in_6h", "in_20d")}
    assert states == {"in_5d": "ok", "in_2d": "warning", "in_6h": "critical", "in_20d": "warning"}
    teams = {
        dict(key)["agent_id"]: dict(key).get("team")
        for key in daemon.samples("elevenlabs_agent_info")
    }
    assert teams == {
        "in_5d": "support",
        "in_2d": "support",
        "in_6h": "support",
        "in_20d": "payments",
    }
    thresholds = daemon.samples("elevenlabs_agent_link_threshold_seconds")
    assert (
        daemon.value("elevenlabs_agent_link_threshold_seconds", agent_id="in_20d", level="warning")
        == 30 * DAY
    )
    assert (
        daemon.value("elevenlabs_agent_link_threshold_seconds", agent_id="in_5d", level="warning")
        == 3 * DAY
    )
    assert len(thresholds) == 8
    assert CANARY_KEY not in daemon.metrics_text()


def test_prometheus_templates_reach_the_rule_verbatim(tmp_path: Path) -> None:
    """Annotations that query the info series (quotes, braces, pipes) pass through Helm untouched."""
    generator = _generator()
    name = (
        "{{ with query (printf \"elevenlabs_agent_info{agent_id='%s'}\" $labels.agent_id) }}"
        '{{ . | first | label "agent_name" }}{{ end }} {a="b"}}}'
    )
    render = generator.render

    def summarised(config: dict[str, Any] | None = None) -> dict[str, Any]:
        rendered: dict[str, Any] = render(config)
        for group in rendered["prometheusAlerts"]["groups"]:
            for rule in group["rules"]:
                rule["annotations"]["summary"] = name
        return rendered

    setattr(generator, "render", summarised)  # noqa: B010 - the module's global, for the call
    try:
        template_text = generator.render_chart_rules()
    finally:
        setattr(generator, "render", render)  # noqa: B010
    alerts = [r for g in generator.render()["prometheusAlerts"]["groups"] for r in g["rules"]]
    copy_of_chart = tmp_path / "chart"
    shutil.copytree(CHART_DIR, copy_of_chart)
    template = copy_of_chart / "templates" / "prometheusrule.yaml"
    template.write_text(template_text, encoding="utf-8")
    files = helm_python.Chart.load(copy_of_chart).render({}, name=RELEASE, namespace=NAMESPACE)
    (text,) = [t for path, t in files.items() if path.endswith("prometheusrule.yaml")]
    groups = yaml.safe_load(text)["spec"]["groups"]
    summaries = [r["annotations"]["summary"] for g in groups for r in g["rules"] if "alert" in r]
    assert summaries == [name] * len(alerts)


def test_the_generator_check_passes_and_fails_in_one_line() -> None:
    script = str(DEPLOY / "mixin" / "build.py")
    result = run([sys.executable, script, "--check"])
    assert result.returncode == 0, output(result)
    result = run([sys.executable, script, "--print-rules", "--owner-labels", "team,instance"])
    assert result.returncode == 2, output(result)
    assert len(result.stderr.splitlines()) == 1, output(result)
    assert "Traceback" not in result.stderr
