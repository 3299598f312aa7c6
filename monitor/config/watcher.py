"""Notices when the config file or a key file changes, without SIGHUP.

A mounted Kubernetes Secret is `key -> ..data/key`, and `..data` is a symlink the kubelet
swaps atomically to a new timestamped directory: the path never changes, what it resolves
to does. So each file is fingerprinted by its resolved path, its inode and times, and
(small files: key files) a digest of its content.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from monitor.config.files import open_regular

DIGEST_LIMIT = 64 * 1024  # bytes: key files are a line; a config may be megabytes

Fingerprint = tuple[str, int, int, int, int, str] | None


def fingerprint(path: Path) -> Fingerprint:
    """What the file is now; None when it cannot be read, or is not a regular file (a FIFO
    would block the open, and then the watcher and shutdown, for good)."""
    try:
        real = os.path.realpath(path)
        with open_regular(real) as file:
            st = os.fstat(file.fileno())
            digest = ""
            if st.st_size <= DIGEST_LIMIT:
                content = file.read(DIGEST_LIMIT + 1)
                digest = hashlib.blake2b(content, digest_size=16).hexdigest()
    except OSError:
        return None
    return (real, st.st_ino, st.st_dev, st.st_mtime_ns, st.st_size, digest)


class FileWatcher:
    def __init__(self) -> None:
        self._seen: dict[Path, Fingerprint] = {}

    def remember(self, paths: Iterable[Path]) -> None:
        """Take the files as they are now as the known state."""
        self._seen = {path: fingerprint(path) for path in paths}

    def changed(self, paths: Iterable[Path]) -> list[Path]:
        """The files that changed since last remembered (a file newly watched counts as
        changed only if it is not what it was when first seen); remembers them as they are."""
        now = {path: fingerprint(path) for path in paths}
        changed = [p for p, f in now.items() if p in self._seen and self._seen[p] != f]
        self._seen = now
        return changed
