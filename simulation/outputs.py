"""Every file distsim writes goes through here: checked before the work, written all
or nothing.

A command first declares its outputs (:meth:`OutputFiles.add`), before it simulates:
each is checked (not empty, not a directory or a device, distinct from the other
outputs and from every input, its directory writable, enough free space for an
estimate of its size) and a temporary is created beside it, which both proves the
directory writable and reserves the name. The command then writes each output's
bytes into its temporary (:meth:`OutputFiles.write`) and, once all are written, renames
them onto their names together (:meth:`OutputFiles.commit`). Anything that goes wrong
before the commit, an error, Ctrl-C, SIGTERM, removes every temporary: the old files
stay, or none appear. A process killed outright (SIGKILL) leaves its temporaries;
the next command writing to the same name clears them (their process is gone).

Bytes are produced in memory before they touch the disk (the HDF5 library, writing
straight into a file, crashes the process when the disk fills; written from memory, a
full disk is an ordinary error). Every I/O error becomes one :class:`OutputError` line
naming the output.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PARTIAL = ".partial"
"""Temporaries are named ``.NAME.PID-RANDOM.partial`` beside ``NAME``."""
MARGIN_BYTES = 1 << 20
"""Free space kept beyond the estimated sizes (file-system metadata, rounding)."""
_LEGACY = re.compile(r"\.[a-z0-9_]{8}\.(nc|png|html|parquet|json|csv|tmp)$")
"""Temporaries of distsim 0.1 (``tempfile.mkstemp`` names), cleared once old."""
_LEGACY_AGE_S = 3600


STOP_ASKED = threading.Event()
"""Set when the command was asked to stop (Ctrl-C, SIGTERM) by the command line's signal
handler: :meth:`OutputFiles.commit` refuses to commit once it is set, should the
interrupt itself have been swallowed."""


class OutputError(Exception):
    """An output that cannot be written, in one line: which one, and why."""


@dataclass
class _Output:
    flag: str
    path: Path
    size: int
    temp: Path

    @property
    def where(self) -> str:
        return f"{self.flag} {self.path}" if self.flag else str(self.path)


class OutputFiles:
    """A command's output files, committed together (a context manager: leaving it
    without :meth:`commit` discards every temporary).

    ``inputs`` are the files the command reads: no output may be one of them.
    """

    def __init__(self, inputs=()):
        self._inputs = {_identity(Path(p)): Path(p) for p in inputs if p is not None}
        self._outputs: dict[str, _Output] = {}
        self._made: list[Path] = []
        self._done = False

    def __enter__(self) -> OutputFiles:
        return self

    def __exit__(self, *exc) -> None:
        if not self._done:
            self.discard()

    def add(self, flag: str, path, size: int = 0) -> Path:
        """Check ``path`` as the output ``flag`` (``--out``), of about ``size`` bytes,
        and reserve its temporary. Raises :class:`OutputError`."""
        if path is None or not str(path).strip():
            raise OutputError(f"{flag}: an empty path")
        p = Path(path)
        where = f"{flag} {p}" if flag else str(p)
        _check_target(where, p)
        ident = _identity(p)
        for other in self._outputs.values():
            if _identity(other.path) == ident:
                raise OutputError(f"{where}: the same file as {other.flag} (each output needs "
                                  "its own file)")
        if ident in self._inputs:
            raise OutputError(f"{where}: that is the input {self._inputs[ident]}, which the "
                              "output would overwrite")
        self._make_parents(where, p)
        clear_stale(p)
        temp = p.with_name(f".{p.name}.{os.getpid()}-{secrets.token_hex(4)}{PARTIAL}")
        try:
            os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError as exc:
            raise _error(where, exc) from None
        self._outputs[flag] = _Output(flag, p, max(0, int(size)), temp)
        self._check_space()
        return p

    def path(self, flag: str) -> Path:
        """The temporary of ``flag``, for a writer that wants a file name."""
        return self._outputs[flag].temp

    def write(self, flag: str, data: bytes | str) -> None:
        """Write ``data`` (bytes, or text as UTF-8) into the temporary of ``flag``."""
        out = self._outputs[flag]
        if isinstance(data, str):
            data = data.encode("utf-8")
        try:
            with open(out.temp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            self.discard()
            raise _error(out.where, exc) from None

    def commit(self) -> None:
        """Rename every temporary onto its name: the outputs appear together (unless a
        stop was asked for that could not interrupt the work, :data:`STOP_ASKED`)."""
        if STOP_ASKED.is_set():
            raise KeyboardInterrupt
        mode = 0o666 & ~_umask()  # temporaries are made 0600; results are ordinary files
        try:
            for out in self._outputs.values():
                os.chmod(out.temp, mode)
            for out in self._outputs.values():
                os.replace(out.temp, out.path)
        except OSError as exc:
            self.discard()
            raise _error(out.where, exc) from None
        for parent in {out.path.parent for out in self._outputs.values()}:
            _fsync_directory(parent)
        self._done = True

    def discard(self) -> None:
        """Remove every temporary and every directory made for the outputs."""
        for out in self._outputs.values():
            with contextlib.suppress(OSError):
                out.temp.unlink()
        for directory in reversed(self._made):
            with contextlib.suppress(OSError):
                directory.rmdir()
        self._done = True

    def _make_parents(self, where: str, p: Path) -> None:
        missing = [d for d in p.absolute().parents if not d.exists()]
        for directory in reversed(missing):
            try:
                directory.mkdir()
            except FileExistsError:
                continue
            except OSError as exc:
                raise _error(where, exc) from None
            self._made.append(directory)

    def _check_space(self) -> None:
        by_device: dict[int, list[_Output]] = {}
        for out in self._outputs.values():
            by_device.setdefault(os.stat(out.temp.parent).st_dev, []).append(out)
        for outs in by_device.values():
            need = sum(o.size for o in outs) + MARGIN_BYTES
            free = shutil.disk_usage(outs[-1].temp.parent).free
            if need > free:
                raise OutputError(f"{outs[-1].where}: needs about {_size(need)} of disk space "
                                  f"and {_size(free)} is free there")


def write_file(path, data: bytes | str, flag: str = "") -> Path:
    """Write one file all or nothing (the one-output case of :class:`OutputFiles`)."""
    with OutputFiles() as outputs:
        outputs.add(flag, path, len(data))
        outputs.write(flag, data)
        outputs.commit()
    return Path(path)


def check_directory(flag: str, directory, size: int = 0) -> None:
    """Refuse, before any work, an output directory that cannot be made or written, or
    whose disk lacks ``size`` bytes (a sweep's ``--out``)."""
    d = Path(directory)
    where = f"{flag} {d}"
    try:
        if d.exists() and not d.is_dir():
            raise OutputError(f"{where}: exists and is not a directory")
    except OSError as exc:
        raise _error(where, exc) from None
    existing = _nearest_directory(where, d.absolute())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{where}: cannot write in {existing}")
    free = shutil.disk_usage(existing).free
    if size + MARGIN_BYTES > free:
        raise OutputError(f"{where}: needs about {_size(size + MARGIN_BYTES)} of disk space "
                          f"and {_size(free)} is free there")


def clear_stale(path: Path) -> None:
    """Remove the temporaries of ``path`` left by processes that no longer run."""
    own = re.compile(re.escape(f".{path.name}.") + r"(\d+)-[0-9a-f]{8}" + re.escape(PARTIAL) + "$")
    legacy = re.compile(re.escape(f".{path.name}") + _LEGACY.pattern)
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        m = own.match(entry.name)
        with contextlib.suppress(OSError):
            if m and not _alive(int(m[1])):
                os.unlink(entry.path)
            elif (legacy.match(entry.name) and entry.is_file(follow_symlinks=False)
                  and time.time() - entry.stat().st_mtime > _LEGACY_AGE_S):
                os.unlink(entry.path)


def _check_target(where: str, p: Path) -> None:
    try:
        if p.exists():
            if p.is_dir():
                raise OutputError(f"{where}: is a directory")
            if not p.is_file():
                raise OutputError(f"{where}: is not a regular file (a device, FIFO or socket)")
    except OSError as exc:  # a symlink loop, a name too long
        raise _error(where, exc) from None
    _nearest_directory(where, p.absolute().parent)


def _nearest_directory(where: str, p: Path) -> Path:
    """The nearest existing folder at or above ``p`` (one line when a file stands there)."""
    existing = next((a for a in (p, *p.parents) if a.exists()), Path(p.anchor or "/"))
    if not existing.is_dir():
        raise OutputError(f"{where}: {existing} is not a directory")
    return existing


def _identity(p: Path):
    """The same file whatever the path: its inode if it exists, else its real path."""
    try:
        st = p.stat()
        return ("inode", st.st_dev, st.st_ino)
    except OSError:
        return ("path", os.path.realpath(p))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _error(where: str, exc: OSError) -> OutputError:
    reason = exc.strerror or str(exc)
    return OutputError(f"{where}: cannot write ({reason})")


def _fsync_directory(directory: Path) -> None:
    """Make the renames durable (where the platform allows opening a directory)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _size(n: int) -> str:
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("kB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"
