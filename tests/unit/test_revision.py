"""build_info's revision: from the image's build argument, a git checkout, or unknown."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor import revision as module
from monitor.revision import REVISION_ENV, UNKNOWN, revision


@pytest.fixture(autouse=True)
def fresh_lookup() -> Iterator[None]:
    revision.cache_clear()
    yield
    revision.cache_clear()


def test_image_build_argument_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REVISION_ENV, "0123456789ab")
    assert revision() == "0123456789ab"


@pytest.mark.parametrize("value", ["abc def", "x" * 65, '1"}\nfake_metric 1', "-rf"])
def test_an_unsafe_value_is_not_exported(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(REVISION_ENV, value)
    assert revision() == UNKNOWN


def test_no_checkout_no_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(REVISION_ENV, raising=False)
    monkeypatch.setattr(module, "_SOURCE_ROOT", tmp_path)

    def no_process(*args: object, **kwargs: object) -> None:
        raise AssertionError("git was started outside a checkout")

    monkeypatch.setattr(subprocess, "run", no_process)
    assert revision() == UNKNOWN
