"""The per-city ANN index files of a release, in versions.

Layout: ``indexes/<version>/{place,user}_city<c>.<backend>`` plus ``manifest.json``;
``indexes/CURRENT.json`` names the live version and is written last, so a failed build
leaves the previous indexes in service. Versions before the last two are then removed.
Each index writes and reads its own bytes (``serving/ann.py``); this module names the
files, publishes a version and finds the live one.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid

from graphrec_pipeline.artifacts import INDEX_POINTER, INDEX_ROOT
from graphrec_pipeline.storage import Storage

VERSION = re.compile(r"^\d{8}T\d{6}-[0-9a-f]{8}$")
KEEP_VERSIONS = 2  # the live one and the one before, for a reader that is still loading it


def new_version() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def version_dir(version: str) -> str:
    return f"{INDEX_ROOT}/{version}"


def manifest_file(version: str) -> str:
    return f"{version_dir(version)}/manifest.json"


def index_file(version: str, kind: str, city: int, backend: str) -> str:
    return f"{version_dir(version)}/{kind}_city{city}.{backend}"


def publish_version(store: Storage, version: str, manifest: dict) -> None:
    """Write the version's manifest, make it live, then remove versions before the last two."""
    store.write_json(manifest_file(version), {**manifest, "release": store.release})
    store.write_json(INDEX_POINTER, {"version": version})
    versions = [v for v in store.list_dir(INDEX_ROOT) if VERSION.match(v) and v != version]
    for old in sorted(versions)[: max(len(versions) - (KEEP_VERSIONS - 1), 0)]:
        store.remove(version_dir(old))  # only names this module makes; never the new one


def live_version(store: Storage) -> str | None:
    """The version ``CURRENT.json`` names, or None without one; a pointer that names
    something other than a version is a ``ValueError``."""
    current = store.read_json(INDEX_POINTER)
    if current is None:
        return None
    version = current.get("version")
    if not isinstance(version, str) or not VERSION.match(version):
        raise ValueError(f"{INDEX_POINTER} names {version!r}, not an index version")
    return version


def live_manifest(store: Storage) -> tuple[str, dict]:
    """The live version and its manifest."""
    version = live_version(store)
    if version is None:
        raise FileNotFoundError("no ANN indexes; materialize the 'ann_indexes' asset")
    manifest = store.read_json(manifest_file(version))
    if manifest is None:
        raise FileNotFoundError(f"{INDEX_POINTER} names version {version} but {manifest_file(version)} is missing")
    return version, manifest
