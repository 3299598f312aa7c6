"""Opening a file that must be a regular file: a FIFO, a device or a directory at a config,
key or watched path is refused at once, never opened in a way that could block."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO


def open_regular(path: Path | str) -> BinaryIO:
    """Open `path` (symlinks followed) for reading in binary; OSError if it is not a regular
    file, with a strerror that says what it is instead."""
    _check(os.stat(path).st_mode)  # before opening: open() on a FIFO waits for a writer
    # O_NONBLOCK, and the check again on what was opened: the path may have been swapped
    # between the stat and the open.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        _check(os.fstat(fd).st_mode)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _check(mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):  # the words open() itself uses
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
    kinds = {
        stat.S_ISFIFO: "a FIFO",
        stat.S_ISSOCK: "a socket",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
    }
    kind = next((name for test, name in kinds.items() if test(mode)), "not a file")
    raise OSError(errno.EINVAL, f"not a regular file ({kind})")
