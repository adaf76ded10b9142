"""How numbers are written in the report's cells (one place, so every table agrees)."""
from __future__ import annotations

DASH = "—"
NOT_MEASURED = "not measured"


def text(v) -> str:
    return DASH if v is None else str(v)


def ips(v) -> str:
    """Images/sec: thousands separated, one decimal below 100."""
    if not isinstance(v, (int, float)):
        return DASH
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def ratio(v, suffix="×") -> str:
    return DASH if v is None else f"{v:.2f}{suffix}"


def pct(v) -> str:
    return DASH if v is None else f"{100 * v:.0f}%"


def acc(v) -> float | None:
    """top-1/5 in percent: records may hold a fraction (≤ 1) or a percentage."""
    return None if v is None else 100 * v if v <= 1 else v


def accs(v) -> str:
    return DASH if v is None else f"{acc(v):.1f}%"


def secs(s) -> str:
    if s is None:
        return DASH
    s = float(s)
    return f"{s:.2f} s" if s < 10 else f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.2f} h"


def count(v) -> str:
    if v is None:
        return DASH
    return f"{v / 1e6:.1f} M" if v >= 1e6 else f"{v / 1e3:.0f} k" if v >= 1e4 else str(v)


def runs(h, fmt=ips, metric=None) -> str:
    """'n=3, 1,912–1,925 at abc1234' or 'n=1'."""
    sp = h.spread(metric)
    commit = (h.rec["git"].get("commit") or "")[:7]
    base = f"n={h.n}"
    return f"{base}; {fmt(sp[0])}–{fmt(sp[1])} over {len(h.same_commit)} at {commit}" if sp else base


def status(r) -> str:
    if r["status"] == "ok":
        return "ok"
    first = (r.get("error") or "").strip().splitlines()
    return f"{r['status']}: {first[0][:90]}" if first else r["status"]


BRIEF = (("data", "data"), ("batch_size", "batch"), ("res", "res"), ("val_res", "val res"), ("workers", "workers"),
         ("steps", "steps"), ("compile", "compile"), ("device", "device"), ("recipe", "recipe"), ("epochs", "epochs"))


def brief(settings: dict, keys=("data", "batch_size", "res", "workers", "steps")) -> str:
    from .identity import get

    names = dict(BRIEF)
    return ", ".join(f"{names.get(k, k)} {get(settings, k)}" for k in keys if get(settings, k) not in (None, False)) or DASH
