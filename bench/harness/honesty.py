"""What a measurement must say about itself when its number could mislead: a window too short
to trust, weights that were never trained, a run that measured nothing. Each warning is one
line on stderr and a `warnings` entry in the record."""
from __future__ import annotations

MIN_WINDOW_S = 3.0  # below this, warm-up and the first epoch start dominate the mean
MEASURED = ("loader", "train", "eval", "scaling")  # kinds whose images/sec come from a StepMeter window


def window_warnings(metrics: dict, warmup: int) -> list[str]:
    steps, wall = metrics.get("steps", 0), metrics.get("wall_s", 0.0)
    if steps and (steps < max(2 * warmup, 10) or wall < MIN_WINDOW_S):
        return [f"the measured window was {steps} steps / {wall:.1f} s: too short to trust (warm-up and epoch starts weigh in); "
                f"measure longer, e.g. --steps {max(50, 4 * warmup)} or --seconds 10"]
    return []


def untrained_warning(init: str | None) -> list[str]:
    return [] if init else ["no --init: these are randomly initialised weights, so top-1 is chance; pass --init CHECKPOINT"]


def checked(ctx, records: list[dict], label: str) -> list[dict]:
    """Say each record's warnings; a measurement with no measured step is an error, never ok."""
    for r in records:
        if r["status"] == "ok" and r["kind"] in MEASURED and not r["metrics"].get("steps"):
            r["status"], r["error"] = "error", "measured nothing: no step fell inside the window (the data ran out or the window was 0)"
        for w in r.get("warnings") or []:
            ctx.log(f"warning: {label}: {w}")
    return records
