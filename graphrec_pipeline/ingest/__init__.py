"""Import a check-in log (events, places, friends, blocks; CSV, Parquet or RecBole atomic
files) and derive the six world tables from behaviour."""

from graphrec_pipeline.ingest.derive import ImportConfig, ImportedWorld, import_log, log_widths
from graphrec_pipeline.ingest.read import RawLog, read_log
from graphrec_pipeline.ingest.rules import BadInput

__all__ = ["BadInput", "ImportConfig", "ImportedWorld", "RawLog", "import_log", "log_widths", "read_log"]
