"""Optional dependencies, imported when a configuration asks for them: object storage
(``[s3]``: s3fs), the Dask executor (``[dask]``: dagster-dask) and Kubernetes (``[k8s]``:
dagster-k8s, dagster-postgres). Without the extra, the error says which one to install."""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str) -> ModuleType:
    """``module``, or a ``ModuleNotFoundError`` naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            f"{module} is not installed; it comes with the [{extra}] extra: "
            f"pip install -c constraints.txt 'graphrec-pipeline[{extra}]'", name=module) from err
