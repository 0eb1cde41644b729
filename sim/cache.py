"""Where compiled simulators are kept, and the lock that lets two runs share them.

Nothing is ever written into the installed package. The cache directory is, in order:
the ``--cache-dir`` option of the command line (which sets ``FIRSTSPIKE_CACHE_DIR``),
the ``FIRSTSPIKE_CACHE_DIR`` environment variable, ``$XDG_CACHE_HOME/firstspike``, or
``~/.cache/firstspike``.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

ENV = "FIRSTSPIKE_CACHE_DIR"


def cache_dir() -> Path:
    """The cache root (created on first use by whoever writes there)."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV]).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return (Path(base) / "firstspike").resolve()


@contextlib.contextmanager
def locked(path: Path):
    """Hold an exclusive lock on ``path`` + ".lock" (blocks while another process holds it).

    Two ``sim`` runs of the same design build it once: the second waits for the first
    and then finds the finished build.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
