"""Result records: one JSON object per line, with the resolved config and the hardware
fingerprint (bench.results.records), the fingerprint itself (bench.results.hardware) and the
schema migration (bench.results.migrate)."""
from .hardware import fingerprint, machine_label, slug
from .schema import SCHEMA, upgrade
from .records import (KINDS, REPO, RUN_ID, Records, Skipped, append, committed_path, default_path, load, make_record, out_path,
                      parse)

__all__ = ["KINDS", "REPO", "RUN_ID", "Records", "SCHEMA", "Skipped", "append", "committed_path", "default_path", "fingerprint", "load",
           "out_path",
           "machine_label", "make_record", "parse", "slug", "upgrade"]
