"""Result files: NetCDF results and the Parquet event table, as bytes and as files.

The bytes are built in memory and written through :mod:`simulation.outputs`, all or
nothing: a crash, a kill or a full disk leaves the old file or none, never half of one.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import xarray as xr

from simulation.outputs import write_file

ENGINE = "h5netcdf"


def netcdf_bytes(ds: xr.Dataset) -> bytes:
    """``ds`` (in memory, not dask-backed) as a NetCDF-4 file, built in memory.

    The same file as ``ds.to_netcdf(path, engine="h5netcdf")``, through the h5netcdf
    store with HDF5's lock given: ``to_netcdf`` first asks which dask scheduler is
    active, and that question imports ``dask.distributed``, about half a second in every
    process that writes a result (each sweep worker included).
    """
    import h5netcdf
    from xarray.backends import H5NetCDFStore
    from xarray.backends.locks import HDF5_LOCK

    buffer = io.BytesIO()
    store = H5NetCDFStore(h5netcdf.File(buffer, "w"), lock=HDF5_LOCK)
    try:
        ds.dump_to_store(store, unlimited_dims=ds.encoding.get("unlimited_dims"))
    finally:
        store.close()
    return buffer.getvalue()


def write_netcdf(ds: xr.Dataset, path: str | Path) -> Path:
    """Write ``ds`` to ``path`` as NetCDF, all or nothing."""
    return write_file(path, netcdf_bytes(ds))


def events_bytes(columns: tuple, channel_names: list[str]) -> bytes:
    """The event table of docs/contracts.md (customer, day, event, channel, amount) as Parquet."""
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
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def write_events(columns: tuple, channel_names: list[str], path: str | Path) -> Path:
    """Write the event table as Parquet, all or nothing."""
    return write_file(path, events_bytes(columns, channel_names))


def read_netcdf(path: str | Path) -> xr.Dataset:
    """Load a result fully into memory (so the file can be overwritten afterwards)."""
    with xr.open_dataset(path, engine=ENGINE) as ds:
        return ds.load()
