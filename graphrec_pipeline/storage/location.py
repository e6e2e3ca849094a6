"""Where a data directory lives: a local folder or a prefix on an S3-compatible store.

Both kinds offer the few operations the pipeline needs, with the same guarantee: a reader
sees a file's old bytes or its new bytes, never half of them.

- :class:`LocalDir` writes a temporary file beside the destination and renames it; copies a
  release by hard links; creates a lock exclusively by hard-linking a written file.
- :class:`ObjectStore` (``s3://bucket/prefix`` through ``fsspec``/``s3fs``) has no rename,
  but a PUT is atomic: a file is written locally, then uploaded in one PUT (or a multipart
  upload, which is also invisible until it completes). A lock is a conditional PUT
  (``If-None-Match: *``); a lock refresh is conditional on the holder's ETag. Libraries
  that only read from a local path (hnswlib, faiss, DuckDB) get a cached local copy,
  keyed by the object's ETag.

Names are relative POSIX paths (``releases/<id>/users.parquet``); ``""`` is the root.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from graphrec_pipeline.extras import require

DATA_DIR_ENV = "GRAPHREC_DATA_DIR"
DEFAULT_DATA_DIR = "data"
ENDPOINT_ENV = "AWS_ENDPOINT_URL"
CACHE_ENV = "GRAPHREC_CACHE_DIR"
SEEDED = ".seeded"  # an object store's marker that a copied release is complete
CHUNK = 1 << 20


class StorageUnavailable(RuntimeError):
    """The data directory cannot be reached or used: the message says which and why."""


class UnreadableFile(ValueError):
    """A stored file that is there but cannot be read as what it should be: a folder where
    a file belongs, a file where a folder belongs, or bytes its parser rejects. The message
    names the file (a damaged data directory is reported in one line, never a traceback)."""


def _in_the_way(url: str, err: OSError) -> UnreadableFile:
    return UnreadableFile(f"{url}: cannot be read ({err.strerror.lower()}: a folder or file is in the way)")


def _sha256(f: BinaryIO) -> str:
    h = hashlib.sha256()
    for chunk in iter(lambda: f.read(CHUNK), b""):
        h.update(chunk)
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    """SHA-256 of a local file, read in 1 MiB chunks (releases run to hundreds of MB)."""
    with open(path, "rb") as f:
        return _sha256(f)


class Location:
    """A root folder of files. Subclasses: :class:`LocalDir`, :class:`ObjectStore`."""

    remote = False

    def url(self, name: str = "") -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.url()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url()!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Location) and self.url() == other.url()

    def __hash__(self) -> int:
        return hash(self.url())

    def child(self, name: str) -> "Location":
        raise NotImplementedError

    def exists(self, name: str) -> bool:
        raise NotImplementedError

    def list(self, name: str = "") -> list[str]:
        """Names of the files and folders directly under ``name``, sorted ([] if none)."""
        raise NotImplementedError

    def files(self, name: str = "") -> list[str]:
        """Every file under ``name``, as sorted names relative to ``name``."""
        raise NotImplementedError

    def open(self, name: str) -> BinaryIO:
        raise NotImplementedError

    def read_bytes(self, name: str) -> bytes:
        with self.open(name) as f:
            return f.read()

    def sha256(self, name: str) -> str:
        with self.open(name) as f:
            return _sha256(f)

    @contextmanager
    def write(self, name: str) -> Iterator[Path]:
        """A temporary local path to write ``name`` through; it becomes ``name`` in one
        atomic step when the block succeeds and is discarded when it fails."""
        raise NotImplementedError
        yield

    def write_bytes(self, name: str, payload: bytes) -> None:
        with self.write(name) as tmp:
            tmp.write_bytes(payload)

    def copy(self, src: str, dst: str) -> None:
        """Copy one file (atomically at ``dst``)."""
        raise NotImplementedError

    def move(self, src: str, dst: str) -> None:
        """Put ``src`` at ``dst`` (replacing it, atomically at ``dst``) and remove ``src``."""
        self.copy(src, dst)
        self.remove(src)

    def create(self, name: str, payload: bytes) -> bool:
        """Write ``name`` only if it does not exist (atomically); False if it did."""
        raise NotImplementedError

    def replace_if_unchanged(self, name: str, payload: bytes) -> bool:
        """Rewrite an existing ``name`` (a lock's new holder process); False if it is gone."""
        raise NotImplementedError

    def take_over(self, name: str, expected: bytes, payload: bytes) -> bool:
        """Replace ``name`` with ``payload`` only if it still holds ``expected`` (a stale
        lock's bytes), atomically against every other taker: of many processes taking over
        the same stale lock, exactly one succeeds. False if it changed or is gone."""
        raise NotImplementedError

    def touch(self, name: str) -> bool:
        """Make an existing ``name``'s modification time now (a lock's heartbeat), never
        creating it again once removed; False if it is gone."""
        raise NotImplementedError

    def mtime(self, name: str) -> float:
        raise NotImplementedError

    def remove(self, name: str) -> None:
        """Delete a file or a folder with everything under it (nothing if absent)."""
        raise NotImplementedError

    def copy_tree(self, src: str, dst: str, skip: tuple[str, ...]) -> None:
        """Make ``dst`` a complete copy of ``src`` without the top-level names in ``skip``;
        ``dst`` either is complete or does not count as present (:meth:`seeded`)."""
        raise NotImplementedError

    def seeded(self, name: str) -> bool:
        raise NotImplementedError

    def local_copy(self, name: str) -> Path:
        """A local path with ``name``'s bytes (for libraries that only read local files)."""
        raise NotImplementedError

    def check(self) -> None:
        """Raise :class:`StorageUnavailable` naming what is wrong if the root is unusable."""


class LocalDir(Location):
    """A folder on the local disk."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()

    def _p(self, name: str) -> Path:
        return self.root / name if name else self.root

    def url(self, name: str = "") -> str:
        return str(self._p(name))

    def child(self, name: str) -> "LocalDir":
        return LocalDir(self._p(name))

    def exists(self, name: str) -> bool:
        return self._p(name).exists()

    def list(self, name: str = "") -> list[str]:
        folder = self._p(name)
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def files(self, name: str = "") -> list[str]:
        base = self._p(name)
        return sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file()) if base.is_dir() else []

    def open(self, name: str) -> BinaryIO:
        try:
            return open(self._p(name), "rb")
        except (IsADirectoryError, NotADirectoryError) as err:
            raise _in_the_way(self.url(name), err) from None

    @contextmanager
    def write(self, name: str) -> Iterator[Path]:
        dest = self._p(name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        os.close(fd)
        try:
            yield Path(tmp)
            os.chmod(tmp, 0o644)
            try:
                os.replace(tmp, dest)
            except (IsADirectoryError, NotADirectoryError) as err:
                raise _in_the_way(self.url(name), err) from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def copy(self, src: str, dst: str) -> None:
        with self.write(dst) as tmp:
            shutil.copyfile(self._p(src), tmp)

    def move(self, src: str, dst: str) -> None:
        try:
            os.replace(self._p(src), self._p(dst))
        except (IsADirectoryError, NotADirectoryError) as err:
            raise _in_the_way(self.url(dst), err) from None

    def create(self, name: str, payload: bytes) -> bool:
        """The payload is written to a temporary file first and hard-linked into place (a
        link fails if the name exists), so no reader ever sees the file empty."""
        path = self._p(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
            os.chmod(tmp, 0o644)
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        return True

    def replace_if_unchanged(self, name: str, payload: bytes) -> bool:
        if not self._p(name).exists():
            return False
        self.write_bytes(name, payload)
        return True

    def take_over(self, name: str, expected: bytes, payload: bytes) -> bool:
        """Under an exclusive ``flock`` on ``.<name>.guard`` (released by the kernel if the
        process dies), compare and rename into place; the lock file is never absent while
        it is replaced, so an exclusive :meth:`create` cannot slip in between."""
        path = self._p(name)
        guard = path.with_name(f".{path.name}.guard")
        with open(guard, "a") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            try:
                if path.read_bytes() != expected:
                    return False
            except FileNotFoundError:
                return False
            self.write_bytes(name, payload)
            return True

    def touch(self, name: str) -> bool:
        try:
            os.utime(self._p(name))
        except FileNotFoundError:
            return False
        return True

    def mtime(self, name: str) -> float:
        return self._p(name).stat().st_mtime

    def remove(self, name: str) -> None:
        path = self._p(name)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def copy_tree(self, src: str, dst: str, skip: tuple[str, ...]) -> None:
        """Hard links into a temporary folder, renamed into place (files are only ever
        replaced by rename, so a link never sees the source's bytes change)."""
        source, dest = self._p(src), self._p(dst)
        tmp = dest.with_name(f".{dest.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        if source.is_dir():
            shutil.copytree(source, tmp, copy_function=os.link,
                            ignore=lambda d, names: [n for n in names if n in skip and Path(d) == source])
        else:
            tmp.mkdir(parents=True)
        os.replace(tmp, dest)

    def seeded(self, name: str) -> bool:
        return self._p(name).is_dir()

    def local_copy(self, name: str) -> Path:
        path = self._p(name)
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist; materialize the asset that writes it first")
        return path

    def check(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise StorageUnavailable(f"data dir {self.root} is a file, not a directory")


# What an S3 client is built from: the process (fsspec's async loop does not survive a
# fork), the endpoint and the credentials the environment names.
_CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                   "AWS_DEFAULT_REGION", "AWS_REGION")
_FILESYSTEMS: dict[tuple, object] = {}


def s3_filesystem(endpoint_url: str | None):
    """One ``s3fs`` filesystem per process, endpoint and credentials. Building one costs a
    botocore session (a fifth of a second); a step opens a data dir several times."""
    key = (os.getpid(), endpoint_url, *(os.environ.get(name) for name in _CREDENTIAL_ENV))
    if key not in _FILESYSTEMS:
        _FILESYSTEMS[key] = require("s3fs", "s3").S3FileSystem(
            endpoint_url=endpoint_url, use_listings_cache=False, skip_instance_cache=True,
            config_kwargs={"connect_timeout": 5, "read_timeout": 60, "retries": {"max_attempts": 3}},
        )
    return _FILESYSTEMS[key]


class ObjectStore(Location):
    """A prefix in an S3-compatible bucket, through ``s3fs``. ``endpoint_url`` (else
    ``$AWS_ENDPOINT_URL``, else AWS) selects MinIO, moto or another S3-compatible server;
    credentials come from the usual AWS chain (environment, profile, instance role)."""

    remote = True

    def __init__(self, url: str, endpoint_url: str | None = None, fs=None):
        scheme, _, rest = url.partition("://")
        if scheme not in ("s3", "s3a") or not rest.strip("/"):
            raise ValueError(f"{url!r} is not an object-store URL: use s3://bucket/prefix")
        self.prefix = rest.strip("/")
        self.bucket = self.prefix.split("/", 1)[0]
        self.endpoint_url = endpoint_url or os.environ.get(ENDPOINT_ENV) or None
        self.fs = fs or s3_filesystem(self.endpoint_url)

    def _k(self, name: str) -> str:
        return f"{self.prefix}/{name}".rstrip("/") if name else self.prefix

    def url(self, name: str = "") -> str:
        return f"s3://{self._k(name)}"

    def child(self, name: str) -> "ObjectStore":
        return ObjectStore(self.url(name), self.endpoint_url, fs=self.fs)

    def _call(self, what: str, fn, *args, **kwargs):
        """``fn(*args)``, with a network, credential or bucket failure turned into one line."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(*args, **kwargs)
        except (FileNotFoundError, FileExistsError, IsADirectoryError):
            if not self._bucket_exists():
                raise StorageUnavailable(f"bucket {self.bucket!r} does not exist at {self._where()}") from None
            raise
        except PermissionError as err:
            raise StorageUnavailable(f"{what} {self.url()}: access denied at {self._where()} (check the "
                                     f"credentials): {err}") from None
        except (OSError, BotoCoreError, ClientError) as err:
            raise StorageUnavailable(f"{what} {self.url()}: {self._where()} failed: {err}") from None

    def _where(self) -> str:
        return f"endpoint {self.endpoint_url}" if self.endpoint_url else "AWS S3"

    def _bucket_exists(self) -> bool:
        try:
            return bool(self.fs.exists(self.bucket))
        except Exception:  # the caller reports the original error
            return True

    def exists(self, name: str) -> bool:
        return self._call("reading", self.fs.exists, self._k(name))

    def list(self, name: str = "") -> list[str]:
        try:
            entries = self._call("listing", self.fs.ls, self._k(name), detail=False)
        except FileNotFoundError:
            return []
        base = self._k(name) + "/"
        return sorted(e[len(base):] for e in entries if e.startswith(base) and e[len(base):])

    def files(self, name: str = "") -> list[str]:
        base = self._k(name) + "/"
        try:
            found = self._call("listing", self.fs.find, self._k(name))
        except FileNotFoundError:
            return []
        return sorted(f[len(base):] for f in found if f.startswith(base))

    def open(self, name: str) -> BinaryIO:
        return self._call("reading", self.fs.open, self._k(name), "rb", block_size=8 * CHUNK)

    def read_bytes(self, name: str) -> bytes:
        return self._call("reading", self.fs.cat_file, self._k(name))

    @contextmanager
    def write(self, name: str) -> Iterator[Path]:
        folder = tempfile.mkdtemp(prefix="graphrec-put-")
        tmp = Path(folder) / Path(name).name
        try:
            yield tmp
            self._call("writing", self.fs.put_file, str(tmp), self._k(name))
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def write_bytes(self, name: str, payload: bytes) -> None:
        self._call("writing", self.fs.pipe_file, self._k(name), payload)

    def copy(self, src: str, dst: str) -> None:
        self._call("copying", self.fs.copy, self._k(src), self._k(dst))

    def create(self, name: str, payload: bytes) -> bool:
        try:
            self._call("writing", self.fs.pipe_file, self._k(name), payload, mode="create")
        except FileExistsError:
            return False
        return True

    def replace_if_unchanged(self, name: str, payload: bytes) -> bool:
        try:
            etag = self._call("reading", self.fs.info, self._k(name))["ETag"]
            self._call("writing", self.fs.pipe_file, self._k(name), payload, IfMatch=etag)
        except (FileNotFoundError, StorageUnavailable):
            return False
        return True

    def take_over(self, name: str, expected: bytes, payload: bytes) -> bool:
        """A PUT conditional on the ETag of the object whose bytes were compared."""
        try:
            etag = self._call("reading", self.fs.info, self._k(name))["ETag"]
            if self.read_bytes(name) != expected:
                return False
            self._call("writing", self.fs.pipe_file, self._k(name), payload, IfMatch=etag)
        except (FileNotFoundError, StorageUnavailable):
            return False
        return True

    def touch(self, name: str) -> bool:
        """Objects have no settable time: the same bytes are written again, conditional on
        the object being the one read (ETag), so a removed lock is never recreated."""
        try:
            payload = self.read_bytes(name)
        except FileNotFoundError:
            return False
        return self.replace_if_unchanged(name, payload)

    def mtime(self, name: str) -> float:
        return self._call("reading", self.fs.info, self._k(name))["LastModified"].timestamp()

    def remove(self, name: str) -> None:
        try:
            self._call("deleting", self.fs.rm, self._k(name), recursive=True)
        except FileNotFoundError:
            pass

    def copy_tree(self, src: str, dst: str, skip: tuple[str, ...]) -> None:
        """Server-side copies of every object, then the :data:`SEEDED` marker last."""
        self.remove(dst)
        for rel in self.files(src):
            if rel.split("/", 1)[0] not in skip:
                self._call("copying", self.fs.copy, self._k(f"{src}/{rel}"), self._k(f"{dst}/{rel}"))
        self.write_bytes(f"{dst}/{SEEDED}", b"")

    def seeded(self, name: str) -> bool:
        return self.exists(f"{name}/{SEEDED}")

    def local_copy(self, name: str) -> Path:
        """Downloaded once per object version (ETag) into ``$GRAPHREC_CACHE_DIR`` (default:
        the system temp folder); the download is renamed into place, so it is whole."""
        try:
            etag = self._call("reading", self.fs.info, self._k(name))["ETag"].strip('"')
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.url(name)} does not exist; materialize the asset that writes it "
                                    "first") from None
        cache = Path(os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "graphrec-cache")
        key = hashlib.sha256(f"{self.endpoint_url}|{self.url(name)}|{etag}".encode()).hexdigest()[:24]
        path = cache / key / Path(name).name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".download.")
            os.close(fd)
            try:
                self._call("reading", self.fs.get_file, self._k(name), tmp)
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        return path

    def check(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.fs.ls(self.bucket, detail=False)
        except FileNotFoundError:
            raise StorageUnavailable(f"bucket {self.bucket!r} does not exist at {self._where()}") from None
        except PermissionError as err:
            raise StorageUnavailable(f"access to bucket {self.bucket!r} denied at {self._where()} (check the "
                                     f"credentials): {err}") from None
        except (OSError, BotoCoreError, ClientError) as err:
            raise StorageUnavailable(f"cannot reach {self._where()} for {self.url()}: {err}") from None


def local_root(where: Location) -> Path:
    """The folder of a :class:`LocalDir`; a TypeError for an object store."""
    if not isinstance(where, LocalDir):
        raise TypeError(f"{where} is not a local folder")
    return where.root


def location(data_dir: str | Path | Location | None = None, endpoint_url: str | None = None) -> Location:
    """The data directory: ``data_dir`` if given, else ``$GRAPHREC_DATA_DIR``, else ``./data``;
    an ``s3://`` URL is an :class:`ObjectStore`, anything else a :class:`LocalDir`."""
    if isinstance(data_dir, Location):
        return data_dir
    where = str(data_dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)
    if "://" in where:
        return ObjectStore(where, endpoint_url)
    return LocalDir(where)

