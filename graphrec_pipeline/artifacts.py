"""The catalogue of a release's files beyond the tables: every name the pipeline writes
and every reader opens, in one place, so that training, serving, lineage and the assets
agree without importing each other (``storage/__init__.py`` draws the release's layout).
"""

GRAPH_FILE = "graph/training_graph.safetensors"  # the training graph's tensors (graph/build.py)
GRAPH_MANIFEST = "graph/manifest.json"  # what the graph was built from (lineage.py)
MODEL_WEIGHTS = "model/graphrec.safetensors"  # the GNN's state dict (model/saved.py)
MODEL_CONFIG = "model/config.json"  # its ModelConfig
MODEL_MANIFEST = "model/manifest.json"  # what the model was trained on (lineage.py)
WORLD_MANIFEST = "world_manifest.json"  # how the world was made: source, config, table digests
EMBEDDINGS_MANIFEST = "serving/embeddings.json"  # which weights the embedding tables come from
INDEX_ROOT = "indexes"  # per-city ANN indexes, one folder per version
INDEX_POINTER = f"{INDEX_ROOT}/CURRENT.json"  # names the live index version
LIGHTGCN_FILE = "baselines/lightgcn.safetensors"  # the LightGCN baseline's embeddings
LIGHTGCN_MANIFEST = "baselines/lightgcn.json"  # the graph and settings they were trained with
