"""Where built-in datasets live, and atomic generation of a dataset folder."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Union

PathLike = Union[str, os.PathLike]

DATA_ROOT_ENV = "M2PT_DATA"
DEFAULT_DATA_ROOT = Path("~/.cache/m2pt/data")


def data_root(root: PathLike | None = None) -> Path:
    """Return the folder that holds generated built-in datasets.

    Args:
        root: Explicit folder; wins over the environment.

    Returns:
        ``root`` if given, else ``$M2PT_DATA`` if set, else ``~/.cache/m2pt/data``.
    """
    if root is not None:
        return Path(root).expanduser()
    return Path(os.environ.get(DATA_ROOT_ENV, DEFAULT_DATA_ROOT)).expanduser()


@contextlib.contextmanager
def generating_folder(final: Path) -> Iterator[Path]:
    """Yield an empty temporary folder that is renamed to ``final`` if the block succeeds.

    The temporary folder sits next to ``final`` (same file system, so the rename is atomic).
    On failure it is removed and ``final`` is not created. If another process finished the
    same folder first, its result is kept and ours is discarded.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp creates the folder private (0700)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
