"""The references a headline is divided by: the machine's decode ceiling (loader-only) and the
compute ceiling (training with the ceiling-role loader: one device tensor, no input work)."""
from __future__ import annotations

from . import identity as I


def shown(h) -> bool:
    """Whether a headline sits beside the loaders' in a table: every loader's, and the compute
    ceiling's training rate (the reference they are divided by). The ceiling-role loader alone
    hands back one device tensor (70-85 million img/s): no loader figure to show or compare."""
    return h.role != "ceiling" or h.kind == "train"


def _latest(hs):
    hs = [h for h in hs if h.ok and h.value() is not None]
    return max(hs, key=lambda h: str(h.rec.get("time"))) if hs else None


def decode_ceiling(h, hs):
    """The latest ok `ceiling` headline of h's machine at h's train resolution."""
    res = I.get(h.settings, "res")
    return _latest([c for c in hs if c.kind == "ceiling" and c.machine == h.machine and c.metrics.get("res", res) == res])


def ceiling_ratio(h, hs) -> tuple[float | None, bool]:
    """(loader-only img/s ÷ decode ceiling, whether it was computed here rather than recorded)."""
    if not h.ok:
        return None, False
    if h.metrics.get("ceiling_ratio") is not None:
        return h.metrics["ceiling_ratio"], False
    c = decode_ceiling(h, hs)
    v = h.value()
    return (v / c.value(), True) if c and v else (None, False)


def synthetic(h, hs):
    """The ceiling-role train headline matching h: same machine, architecture, dataset and
    options, same settings apart from the backend's own."""
    want = {k: v for k, v in h.settings.items() if not k.startswith(I.MACHINE_PREFIXES)}
    cands = [s for s in hs if s.kind == "train" and s.role == "ceiling" and s.machine == h.machine and s.slot == h.slot
             and s.options == h.options and s.rec["dataset"].get("name") == h.rec["dataset"].get("name")]
    same = [s for s in cands if {k: v for k, v in s.settings.items() if not k.startswith(I.MACHINE_PREFIXES)} == want]
    return _latest(same)


def ratio_to_synthetic(h, hs) -> float | None:
    if not h.ok:
        return None
    if h.metrics.get("ratio_to_synthetic") is not None:  # measured in the same invocation: preferred
        return h.metrics["ratio_to_synthetic"]
    s = synthetic(h, hs)
    v = h.value()
    return v / s.value() if s and v else None


def synthetic_rate(h, hs) -> float | None:
    if h.metrics.get("compute_ips") is not None:
        return h.metrics["compute_ips"]
    s = synthetic(h, hs)
    return s.value() if s else None
