"""Writing output files safely: checked before the work, written atomically, errors explained.

Every file firstspike writes (model files, checkpoints, reports, Verilog) goes through
``atomic_write``: a temporary file in the target folder, then a rename, so an
interruption, a full disk or a read-only folder never leaves a partial or ``.tmp`` file.
``check_output_file`` runs the same checks up front, so that a long step (training,
simulation) does not run only to fail at the end.
"""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Callable

from firstspike.errors import OutputError


def check_output_file(path: str | os.PathLike, what: str = "output file") -> Path:
    """Raise OutputError if ``path`` cannot be written as a file; returns it as a Path."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a directory; give the {what}'s file name")
    folder = _existing_ancestor(path.parent)
    if not folder.is_dir():
        raise OutputError(f"{path}: {folder} is not a directory")
    _probe(folder, path, what)
    if path.exists() and not os.access(path, os.W_OK) and not os.access(path.parent, os.W_OK):
        raise OutputError(f"{path}: cannot replace the {what}: it is read-only")
    return path


def check_output_dir(path: str | os.PathLike, what: str = "output directory") -> Path:
    """Raise OutputError if ``path`` cannot be used as a directory to write into."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: is a file, not a directory; give a directory for the {what}")
    folder = _existing_ancestor(path)
    if not folder.is_dir():
        raise OutputError(f"{path}: {folder} is not a directory")
    _probe(folder, path, what)
    return path


def atomic_write(path: str | os.PathLike, write: Callable[[object], None], what: str = "output file",
                 binary: bool = True) -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, then rename it into place.

    The file gets the usual permissions (0666 less the umask), not mkstemp's 0600. Any
    OSError becomes an OutputError naming the file; nothing is left behind.
    """
    def by_file(tmp: Path) -> None:
        with open(tmp, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    return atomic_write_path(path, by_file, what)


def atomic_write_path(path: str | os.PathLike, write_to: Callable[[Path], None], what: str = "output file") -> Path:
    """Like ``atomic_write`` for writers that take a file name (HDF5 and the like)."""
    path = check_output_file(path, what)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        write_to(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        reason = "the disk is full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
        raise OutputError(f"{path}: cannot write the {what}: {reason}") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return path


def write_text(path: str | os.PathLike, text: str, what: str = "output file") -> Path:
    return atomic_write(path, lambda f: f.write(text), what, binary=False)


def _probe(folder: Path, path: Path, what: str) -> None:
    """Create and remove a file in ``folder``: the one test of writability that holds for root too."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".firstspike-probe.", dir=folder)
    except OSError:
        raise OutputError(f"{path}: cannot write the {what}: {folder} is not writable") from None
    os.close(fd)
    os.unlink(probe)


def _existing_ancestor(p: Path) -> Path:
    p = p.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
