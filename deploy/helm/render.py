#!/usr/bin/env python3
"""Render the chart to plain manifests without a helm binary (what `helm template` prints).

    python deploy/helm/render.py --values my-values.yaml --namespace monitoring \\
      | kubectl apply -n monitoring -f -

Uses Helm's own Go SDK through PyPI's helm-python-sdk (`pip install helm-python-sdk`), so the
schema check and the templates are exactly those of `helm install`. Exit 2 on bad values.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parent / "elevenlabs-link-monitor"


def _merge(into: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Later files win, key by key, as with repeated `helm -f`."""
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-f", "--values", action="append", default=[], help="a values file")
    parser.add_argument("--name", default="elevenlabs-link-monitor", help="the release name")
    parser.add_argument("-n", "--namespace", default="default")
    args = parser.parse_args(argv)
    try:
        import helm_python
    except ImportError:
        print("render.py: needs helm-python-sdk (pip install helm-python-sdk)", file=sys.stderr)
        return 2
    values: dict[str, Any] = {}
    for path in args.values:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except OSError as error:
            print(f"render.py: {path}: {error.strerror}", file=sys.stderr)
            return 2
        except yaml.YAMLError as error:
            # PyYAML's own message quotes the line, which may hold apiKey.value: leave it out.
            mark = getattr(error, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            problem = getattr(error, "problem", None) or "not valid YAML"
            print(f"render.py: {path}{line}: invalid YAML: {problem}", file=sys.stderr)
            return 2
        if not isinstance(loaded, dict):
            print(f"render.py: {path}: not a mapping of values", file=sys.stderr)
            return 2
        _merge(values, loaded)
    try:
        files = helm_python.Chart.load(CHART).render(
            values, name=args.name, namespace=args.namespace
        )
    except helm_python.HelmError as error:
        # Helm's message lists one problem per line; keep it to one line.
        problems = [line.strip(" -") for line in str(error).splitlines() if line.strip(" -")]
        print(f"render.py: {'; '.join(problems)}", file=sys.stderr)
        return 2
    for path, text in sorted(files.items()):
        if path.endswith(".yaml") and text.strip():
            sys.stdout.write(f"---\n# Source: {path}\n{text.strip()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
