"""Where the small values passed between the steps of one asset go: JSON in the run's own
release (``staging/steps/``), through the same storage as everything else.

Dagster's default IO manager pickles step outputs into the instance's local folder, which
the workers of a Dask or Kubernetes run do not share and which runs code on load; these
values (a city to index, a report row) are plain JSON, and the data directory (local or
``s3://``) is the one thing every worker sees. Staging is not part of a release's digests.
"""

from __future__ import annotations

import json

import dagster as dg

from graphrec_pipeline.defs.resources import StorageResource
from graphrec_pipeline.storage import STAGING

STEP_OUTPUTS = "step_outputs"  # the resource key


class StepOutputs(dg.IOManager):
    """JSON-serializable step outputs in ``<release>/staging/steps/<step>/<output>.json``."""

    def __init__(self, storage: StorageResource):
        self.storage = storage

    @staticmethod
    def _name(context: dg.OutputContext) -> str:
        _run, step, *rest = context.get_identifier()
        return f"{STAGING}/steps/{step}/{'.'.join(rest)}.json"

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        store = self.storage.data().storage(context.run_id)
        store.write_bytes(self._name(context), json.dumps(obj, sort_keys=True).encode())

    def load_input(self, context: dg.InputContext):
        upstream = context.upstream_output
        store = self.storage.data().storage(upstream.run_id)
        return json.loads(store.read_bytes(self._name(upstream)))


@dg.io_manager(required_resource_keys={"storage"}, description="Step outputs as JSON in the run's release.")
def step_outputs(init_context) -> StepOutputs:
    return StepOutputs(init_context.resources.storage)
