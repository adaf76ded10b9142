"""What a measurement must say about itself when its number could mislead: a window too short
to trust, weights that were never trained, a run that measured nothing, a network that learned
nothing or a schedule that never decays. Each warning is one
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


def schedule_warnings(schedule) -> list[str]:
    """A triangular schedule whose peak is at or after the last epoch rises for the whole run and
    never decays (lr_factor clips the peak to the end): the run ends at its highest rate."""
    e, peak = schedule.epochs, schedule.lr_peak_epoch
    if schedule.lr_schedule == "triangular" and peak is not None and e and peak >= e:
        return [f"the learning rate peaks at epoch {peak:g}, at or after the run's last ({e}): it rises the whole run and "
                f"never decays; set --lr-peak-epoch below {e} (e.g. {round(0.2 * e, 1):g}) or train longer"]
    return []


def learning_warnings(metrics: dict, classes: int) -> list[str]:
    """A final top-1 at chance level: the network learned nothing (the run is still a record, and
    ok: it measured what it was asked to, but the number is no architecture's accuracy)."""
    top1 = metrics.get("top1")
    if top1 is None or classes < 2 or top1 > 1.2 / classes + 0.01:
        return []
    return [f"top-1 {top1:.3f} is chance level for {classes} classes: the network learned nothing (a learning rate too "
            f"high for it, or too few steps); try a lower --lr or more --epochs"]


def checked(ctx, records: list[dict], label: str) -> list[dict]:
    """Say each record's warnings; a measurement with no measured step is an error, never ok."""
    for r in records:
        if r["status"] == "ok" and r["kind"] in MEASURED and not r["metrics"].get("steps"):
            r["status"], r["error"] = "error", "measured nothing: no step fell inside the window (the data ran out or the window was 0)"
        for w in r.get("warnings") or []:
            ctx.log(f"warning: {label}: {w}")
    return records
