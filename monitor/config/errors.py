"""ConfigError: a config that cannot be used, as located one-line problems, bounded."""

from __future__ import annotations

import re
from collections.abc import Iterable

# A failed load reports this many problems and how many it left out; each at most this long.
SHOWN_PROBLEMS = 20
MAX_PROBLEM_CHARS = 300


# The credentials of a URL (`http://user:password@proxy:3128`): a problem line may quote
# what was written where a key belongs (a proxy URL typed as a key), and the line reaches
# stderr and the reload log.
_USERINFO = re.compile(r"(?<=://)[^/@\s]*@")


def _bounded_line(problem: str) -> str:
    problem = _USERINFO.sub("[REDACTED]@", problem)
    if len(problem) <= MAX_PROBLEM_CHARS:
        return problem
    return problem[: MAX_PROBLEM_CHARS - 1] + "…"


class ConfigError(Exception):
    """A config that cannot be used; `problems` holds one located line each, bounded: the
    first SHOWN_PROBLEMS, then one line saying how many were left out (`all_problems` has
    them all). What a log line or stderr gets stays small however bad the file is."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.all_problems = [_USERINFO.sub("[REDACTED]@", p) for p in problems]
        self.shown = [_bounded_line(p) for p in self.all_problems[:SHOWN_PROBLEMS]]
        self.left_out = len(self.all_problems) - len(self.shown)
        more = self.left_out
        self.problems = self.shown + (
            [f"and {more} more problem{'s' if more > 1 else ''}"] if more > 0 else []
        )
        super().__init__("; ".join(self.problems))
