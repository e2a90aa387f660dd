"""Writing results: NetCDF (and later Parquet) files written atomically.

A result file is written under a temporary name in the destination directory,
flushed, then renamed onto its final name: a crash leaves the old file or none,
never half of one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

ENGINE = "h5netcdf"


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = ""):
    """Yield a temporary path beside ``path``; on success it replaces ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are ordinary files
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_netcdf(ds: xr.Dataset, path: str | Path) -> Path:
    """Write ``ds`` (in memory, not dask-backed) to ``path`` atomically, with h5netcdf.

    The same file as ``ds.to_netcdf(path, engine="h5netcdf")``, written through the
    h5netcdf store with HDF5's lock given: ``to_netcdf`` first asks which dask
    scheduler is active, and that question imports ``dask.distributed``, about half a
    second in every process that writes a result (each sweep worker included).
    """
    from xarray.backends import H5NetCDFStore
    from xarray.backends.locks import HDF5_LOCK

    with atomic_path(path, ".nc") as tmp:
        store = H5NetCDFStore.open(str(tmp), mode="w", lock=HDF5_LOCK)
        try:
            ds.dump_to_store(store, unlimited_dims=ds.encoding.get("unlimited_dims"))
        finally:
            store.close()
    return Path(path)


def write_events(columns: tuple, channel_names: list[str], path: str | Path) -> Path:
    """Write the event table of docs/contracts.md (customer, day, event, channel, amount) as Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from simulation.kernels.events import EVENT_KINDS

    customer, day, kind, channel, amount = columns
    table = pa.table({
        "customer": pa.array(customer, pa.int64()),
        "day": pa.array(day, pa.int32()),
        "event": pa.DictionaryArray.from_arrays(pa.array(kind.astype(np.int32)),
                                                 pa.array(EVENT_KINDS)).cast(pa.string()),
        "channel": pa.DictionaryArray.from_arrays(pa.array(channel.astype(np.int32)),
                                                   pa.array(channel_names)).cast(pa.string()),
        "amount": pa.array(amount, pa.float64()),
    })
    with atomic_path(path, ".parquet") as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def read_netcdf(path: str | Path) -> xr.Dataset:
    """Load a result fully into memory (so the file can be overwritten afterwards)."""
    with xr.open_dataset(path, engine=ENGINE) as ds:
        return ds.load()
