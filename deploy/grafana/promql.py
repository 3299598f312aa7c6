"""Every PromQL expression in the Grafana dashboard and alert rules, ready to run on Prometheus.

Standard library and PyYAML only, so a test can import it without the Grafana SDK::

    import importlib.util
    spec = importlib.util.spec_from_file_location("promql", "deploy/grafana/promql.py")
    promql = importlib.util.module_from_spec(spec); spec.loader.exec_module(promql)
    promql.dashboard_expressions("deploy/grafana/dashboards/elevenlabs-link-monitor.json")
    promql.alert_rule_expressions("deploy/grafana/provisioning/alerting/elevenlabs-link-monitor.yaml")

Grafana's template variables are replaced by values Prometheus accepts and that
select everything: a variable that offers "All" gets its ``allValue`` (``.*``
for the regex-matched ``$workspace`` and ``$agent``), a single-valued one its
current value (``$job`` becomes ``elevenlabs-link-monitor``), and the built-in
intervals ``$__rate_interval``, ``$__interval`` and ``$__range`` become ``5m``.
A variable it does not know raises ``ValueError`` rather than being left in.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

__all__ = ["BUILTIN_VALUES", "alert_rule_expressions", "dashboard_expressions", "metric_names"]

# Grafana's global variables, as a query against a real Prometheus can use them.
BUILTIN_VALUES = {
    "__rate_interval": "5m",
    "__interval": "5m",
    "__range": "5m",
    "__interval_ms": "300000",
    "__range_s": "300",
    "__range_ms": "300000",
}

# $name, ${name}, ${name:format} and the deprecated [[name]].
_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]")


def _substitute(expr: str, values: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in values:
            raise ValueError(f"unknown template variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(replace, expr)


def _variable_values(dashboard: dict[str, Any]) -> dict[str, str]:
    values = dict(BUILTIN_VALUES)
    for variable in dashboard.get("templating", {}).get("list", []):
        name = variable["name"]
        if variable.get("type") == "datasource":
            values[name] = ""  # never inside an expression; the data source is chosen by the caller
        elif variable.get("includeAll"):
            values[name] = variable.get("allValue") or ".*"
        elif isinstance(variable.get("current"), dict) and variable["current"].get("value") not in (
            None,
            "",
        ):
            current = variable["current"]["value"]
            values[name] = current[0] if isinstance(current, list) else str(current)
        elif variable.get("type") in ("textbox", "constant") and isinstance(
            variable.get("query"), str
        ):
            values[name] = variable["query"]
    return values


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for panel in panels:
        found.append(panel)
        found.extend(_panels(panel.get("panels", [])))  # a collapsed row holds its panels
    return found


def _variable_selector(query: Any) -> str | None:
    """The series selector behind a Prometheus variable query; None if it holds no PromQL."""
    if isinstance(query, dict):
        query = query.get("query")
    if not isinstance(query, str) or not query.strip():
        return None
    text: str = query.strip()
    return _selector_of(text)


def _selector_of(query: str) -> str | None:
    for function in ("label_values", "query_result"):
        if query.startswith(function + "(") and query.endswith(")"):
            inner = query[len(function) + 1 : -1]
            if function == "label_values":
                # label_values(selector, label): the selector ends at the last top-level comma.
                depth, split = 0, None
                for index, char in enumerate(inner):
                    if char in "({[":
                        depth += 1
                    elif char in ")}]":
                        depth -= 1
                    elif char == "," and depth == 0:
                        split = index
                if split is None:
                    return None  # label_values(label): no selector
                inner = inner[:split]
            return inner.strip()
    if query.startswith(("label_names(", "metrics(")):
        return None
    return query


def dashboard_expressions(path: str | Path) -> list[str]:
    """Every panel query's expression and every variable query's selector, variables substituted."""
    dashboard = json.loads(Path(path).read_text(encoding="utf-8"))
    values = _variable_values(dashboard)
    expressions = []
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            selector = _variable_selector(variable.get("query"))
            if selector:
                expressions.append(_substitute(selector, values))
    for panel in _panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if isinstance(expr, str):
                expressions.append(_substitute(expr, values))
    return expressions


def alert_rule_expressions(path: str | Path) -> list[str]:
    """The PromQL of every data-source query of a provisioning file (not reduce or threshold)."""
    document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    expressions = []
    for group in document.get("groups", []):
        for rule in group.get("rules", []):
            for query in rule.get("data", []):
                model = query.get("model", {})
                if (
                    query.get("datasourceUid") == "__expr__"
                    or model.get("datasource", {}).get("type") == "__expr__"
                ):
                    continue
                expr = model.get("expr")
                if isinstance(expr, str):
                    # Grafana expands $VAR from its environment in provisioned queries;
                    # $$ is a literal $.
                    expressions.append(
                        _substitute(expr.replace("$$", "\0"), BUILTIN_VALUES).replace("\0", "$")
                    )
    return expressions


# --- metric names in an expression, without a PromQL parser -----------------

_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
    "atan2",
    "start",
    "end",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_MODIFIERS = re.compile(r"\boffset\s+-?[0-9a-z]+|@\s*(?:start\(\)|end\(\)|[0-9.eE+-]+)")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_NUMBER = re.compile(
    r"(?<![\w:])(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)"
)
_IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers not functions, keywords or labels."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _MODIFIERS.sub("", text)
    text = _GROUPING.sub("", text)
    text = _NUMBER.sub("0", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name = match.group(0)
        following = text[match.end() :].lstrip()
        if following.startswith("("):
            continue  # a function or aggregation
        if name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names
