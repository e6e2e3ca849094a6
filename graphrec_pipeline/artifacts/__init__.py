"""The catalogue of a release's files beyond the tables: every name the pipeline writes
and every reader opens, and (in this package's modules) the typed save and load of each,
so that training, serving, lineage and the assets agree without importing each other.
It sits on the ground floor: it imports only ``storage`` (which draws the release's
layout) and libraries.

    graph.py        the training graph (HeteroData <-> safetensors)
    model.py        the GNN's state dict and config
    embeddings.py   the embedding tables and their manifest
    indexes.py      the per-city ANN index versions and their pointer
    lightgcn.py     the LightGCN baseline's embeddings and training key

The world tables and the release manifests are ``releases.py``'s; what each manifest
records and how the chain is checked is ``lineage.py``'s.
"""

GRAPH_FILE = "graph/training_graph.safetensors"  # the training graph's tensors
GRAPH_MANIFEST = "graph/manifest.json"  # what the graph was built from (lineage.py)
MODEL_WEIGHTS = "model/graphrec.safetensors"  # the GNN's state dict
MODEL_CONFIG = "model/config.json"  # its ModelConfig
MODEL_MANIFEST = "model/manifest.json"  # what the model was trained on (lineage.py)
WORLD_MANIFEST = "world_manifest.json"  # how the world was made: source, config, table digests
EMBEDDINGS_MANIFEST = "serving/embeddings.json"  # which weights the embedding tables come from
INDEX_ROOT = "indexes"  # per-city ANN indexes, one folder per version
INDEX_POINTER = f"{INDEX_ROOT}/CURRENT.json"  # names the live index version
LIGHTGCN_FILE = "baselines/lightgcn.safetensors"  # the LightGCN baseline's embeddings
LIGHTGCN_MANIFEST = "baselines/lightgcn.json"  # the graph and settings they were trained with
