"""Variants (a non-default option) against their default, and one configuration across machines."""
from __future__ import annotations

from collections import defaultdict

from . import cells as C
from . import identity as I
from . import lookups as L
from .document import Note, Section, Table
from .machine_sections import value_cell

# What each option does, for the reader of the variants table. Options a backend declares
# without an entry here are shown by name only.
OPTION_HELP = {
    "pool": "where per-sample decode runs: 'threads' in the main process, 'processes' in DataLoader workers",
    "chunk": "samples per worker task (a batch split into chunks joined by the consumer)",
    "task": "samples per thread-pool task",
    "decoder": "the decode path ('pil': PIL decode + resize, the reference)",
    "producers": "threads reading files and launching device decode",
    "order": "sample order within an epoch",
    "os_cache": "read the converted file through the OS page cache",
    "write_mode": "how images are stored in the converted file",
    "max_resolution": "longest side stored in the converted file",
    "jpeg_quality": "JPEG quality of the converted file",
}


def option_help(opts: dict) -> str:
    import loaders

    from ..cli.config import FIELDS

    flags = {name: f.metadata.get("help", "") for name, (_, f) in FIELDS.items()}
    declared = {k: o.help for b in loaders.REGISTRY.values() for k, o in b.options.items()}  # what each backend says of its options
    return "; ".join(f"{k}: {OPTION_HELP.get(k) or declared.get(k) or flags.get(k) or C.DASH}" for k in opts)


def _base(s: dict) -> dict:
    """Settings an option may change on its way (the backend's resolved settings, the flags)."""
    return {k: v for k, v in s.items() if not k.startswith(I.MACHINE_PREFIXES) and k not in I.VARIANT_FLAGS}


def default_of(v, hs):
    """The default-option headline that v varies: same machine and workload, same settings
    apart from those the option itself changes."""
    cands = [h for h in hs if not h.options and h.machine == v.machine and I.workload(h.rec) == I.workload(v.rec)]
    same = [h for h in cands if _base(h.settings) == _base(v.settings)]
    return max(same, key=lambda h: str(h.rec.get("time"))) if same else None


def _default_ok(v, hs) -> bool:
    d = default_of(v, hs)
    return bool(d and d.ok)


def variants(hs, m) -> Section:
    sec = Section(f"{m.label}: variants", level=3, intro=(
        "Each configuration with a non-default option (loader options such as pool=threads, chunk=16, producers=2, or a "
        "technique flag such as --compile), as a ratio to the default configuration with the same settings."))
    vs = [h for h in hs if h.machine == m.id and h.options and h.kind in ("loader", "train", "eval", "accuracy")
          and (h.role == "loader" or h.kind == "train") and (h.ok or _default_ok(h, hs))]
    if not vs:
        sec.add(Note("No variants measured on this machine."))
        return sec
    t = sec.add(Table(["kind", "loader", "split / arch", "option", "what it does", "variant", "default", "ratio to default"]))
    for v in sorted(vs, key=lambda h: (h.kind, str(h.slot), str(h.loader), I.dumps(h.options))):
        d = default_of(v, hs)
        r = v.value() / d.value() if d and d.value() and v.value() else None
        fmt = C.accs if v.kind == "accuracy" else C.ips
        name = v.loader + (" (compute ceiling)" if v.role == "ceiling" else "")
        t.add([v.kind, name, C.text(v.slot), I.show_options(v.options), option_help(v.options),
               value_cell(v) if fmt is C.ips else fmt(v.value()), (value_cell(d) if fmt is C.ips else fmt(d.value())) if d else "no default run with these settings",
               C.ratio(r)], "" if v.ok else "fail")
    return sec


def across(hs, ms) -> Section:
    """One configuration on every machine that ran it, against the first (baseline) machine."""
    sec = Section("Across machines", intro=(
        "Default configurations run on more than one machine, side by side, with the ratio to the baseline (the first "
        "machine listed that ran it successfully). Settings each machine resolves for itself (device, workers, threads, AMP dtype, the "
        "backend's own) may differ; where anything else differs the ratio is left out and the difference named."))
    groups = defaultdict(list)
    for h in hs:
        if not h.options and h.kind in ("loader", "train", "eval", "accuracy", "ceiling") and L.shown(h):
            groups[I.dumps(I.workload(h.rec))].append(h)
    order = list(ms)
    t = Table(["kind", "workload", "machine", "value", "ratio to baseline", "baseline", "settings that differ"])
    for key, group in sorted(groups.items()):
        group = sorted(group, key=lambda h: order.index(h.machine))
        if len({h.machine for h in group}) < 2 or not any(h.ok for h in group):
            continue  # one machine, or nothing measured anywhere (unavailable on every machine): nothing to set side by side
        base = next(h for h in group if h.ok)
        for h in group:
            d = I.differs(I.portable(base.settings), I.portable(h.settings))
            r = h.value() / base.value() if not d and h.value() and base.value() else None
            fmt = C.accs if h.kind == "accuracy" else C.ips
            t.add([h.kind, " / ".join(str(x) for x in I.workload(h.rec)[1:] if x), ms[h.machine].label, fmt(h.value()) if h.ok else h.rec["status"],
                   C.ratio(r) if h is not base else "baseline", ms[base.machine].label, "; ".join(d) or "same"])
    sec.add(t if t.rows else Note("No configuration has run on more than one machine yet."))
    return sec
