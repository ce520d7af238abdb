"""Reader of the IDX format of (Fashion-)MNIST files, plain or gzip-compressed."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from m2pt.data.errors import DatasetError

# Third byte of the magic number -> element type (http://yann.lecun.com/exdb/mnist/).
IDX_DTYPES = {
    0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or not) into a numpy array of its declared shape.

    Raises:
        DatasetError: When the header is invalid or the data is shorter than declared.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as file:
        data = file.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES:
        raise DatasetError(f"{path} is not an IDX file (bad magic number {data[:4].hex()})")
    dtype = np.dtype(IDX_DTYPES[data[2]])
    ndim = data[3]
    header_size = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header_size != expected:
        raise DatasetError(f"{path}: header declares shape {shape} ({expected} bytes) but the "
                           f"file holds {len(data) - header_size} bytes; the file is damaged")
    return np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape).astype(
        dtype.newbyteorder("="))
