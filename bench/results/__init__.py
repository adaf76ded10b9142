"""Result records: one JSON object per line, with the resolved config and the hardware
fingerprint (bench.results.records), and the fingerprint itself (bench.results.hardware)."""
from .hardware import fingerprint, machine_label, slug
from .records import REPO, RUN_ID, SCHEMA, append, default_path, load, make_record

__all__ = ["REPO", "RUN_ID", "SCHEMA", "append", "default_path", "fingerprint", "load", "machine_label", "make_record", "slug"]
