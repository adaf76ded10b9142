"""The generated dataset (`--data embedded`, the default): an ImageNet-like ImageFolder of JPEGs
made deterministically on first use.

Ten classes, each a family of shapes with its own texture and a preferred (overlapping) colour
range, drawn at random position, scale and rotation over cluttered, noisy backgrounds, so a
small CNN can learn it only from real features and augmentation matters. JPEG quality 90 with
4:2:0 chroma; shorter side 200-500 px, aspect 3:4 to 16:9, like ImageNet's photos. The same
seed gives byte-identical files (one RNG per image, seeded by split/class/index).
"""
from __future__ import annotations

import colorsys
import hashlib
import io
import json
import math
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

VERSION = 1
DEFAULT_PER_CLASS = 80  # train images per class; val gets a quarter
SEED = 0
# (shape, texture, hue centre): hues overlap between classes, so colour alone is not enough.
CLASSES = [
    ("circle", "solid", 0.00),
    ("square", "stripes", 0.08),
    ("triangle", "solid", 0.30),
    ("star", "dots", 0.15),
    ("ring", "solid", 0.55),
    ("cross", "checker", 0.62),
    ("hexagon", "stripes", 0.75),
    ("crescent", "solid", 0.85),
    ("diamond", "dots", 0.45),
    ("arrow", "checker", 0.05),
]
NAMES = [f"{i:02d}_{s}_{t}" for i, (s, t, _) in enumerate(CLASSES)]


def _polygon(shape: str, cx, cy, r, rot):
    def pts(angles, radii):
        return [(cx + rr * math.cos(a + rot), cy + rr * math.sin(a + rot)) for a, rr in zip(angles, radii)]

    if shape == "square":
        return pts([math.pi / 4 + k * math.pi / 2 for k in range(4)], [r] * 4)
    if shape == "triangle":
        return pts([k * 2 * math.pi / 3 for k in range(3)], [r] * 3)
    if shape == "hexagon":
        return pts([k * math.pi / 3 for k in range(6)], [r] * 6)
    if shape == "diamond":
        return pts([k * math.pi / 2 for k in range(4)], [r, 0.55 * r, r, 0.55 * r])
    if shape == "star":
        return pts([k * math.pi / 5 for k in range(10)], [r if k % 2 == 0 else 0.42 * r for k in range(10)])
    if shape == "cross":
        a, b = r, 0.33 * r
        base = [(b, a), (b, b), (a, b), (a, -b), (b, -b), (b, -a), (-b, -a), (-b, -b), (-a, -b), (-a, b), (-b, b), (-b, a)]
    elif shape == "arrow":
        base = [(-r, -0.25 * r), (0.2 * r, -0.25 * r), (0.2 * r, -0.6 * r), (r, 0), (0.2 * r, 0.6 * r), (0.2 * r, 0.25 * r), (-r, 0.25 * r)]
    else:
        raise ValueError(shape)
    c, s = math.cos(rot), math.sin(rot)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in base]


def _mask(shape: str, size, cx, cy, r, rot) -> Image.Image:
    m = Image.new("L", size, 0)
    d = ImageDraw.Draw(m)
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif shape == "ring":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        d.ellipse([cx - 0.55 * r, cy - 0.55 * r, cx + 0.55 * r, cy + 0.55 * r], fill=0)
    elif shape == "crescent":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        ox, oy = 0.45 * r * math.cos(rot), 0.45 * r * math.sin(rot)
        d.ellipse([cx + ox - 0.85 * r, cy + oy - 0.85 * r, cx + ox + 0.85 * r, cy + oy + 0.85 * r], fill=0)
    else:
        d.polygon(_polygon(shape, cx, cy, r, rot), fill=255)
    return m


def _colour(rng, hue, spread=0.07):
    h = (hue + rng.uniform(-spread, spread)) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, rng.uniform(0.45, 1.0), rng.uniform(0.45, 1.0))
    return np.array([r, g, b]) * 255


def _texture(kind, w, h, rng, colour) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.broadcast_to(colour, (h, w, 3)).astype(np.float32)
    if kind == "solid":
        return base
    period = rng.uniform(8, 16)
    theta = rng.uniform(0, math.pi)
    u = xx * math.cos(theta) + yy * math.sin(theta)
    v = -xx * math.sin(theta) + yy * math.cos(theta)
    if kind == "stripes":
        pat = (np.sin(2 * math.pi * u / period) > 0)
    elif kind == "checker":
        pat = ((np.floor(u / period) + np.floor(v / period)) % 2) == 0
    else:  # dots
        pat = (np.hypot((u % period) - period / 2, (v % period) - period / 2) < period * 0.3)
    return np.where(pat[..., None], base, base * 0.35)


def render(split: str, label: int, index: int, seed: int = SEED) -> bytes:
    """One JPEG, fully determined by (seed, split, label, index)."""
    rng = np.random.default_rng([seed, 0 if split == "train" else 1, label, index])
    short = int(rng.integers(200, 501))
    aspect = float(rng.uniform(4 / 3, 16 / 9)) if rng.random() < 0.75 else float(rng.uniform(1.0, 4 / 3))
    w, h = (int(short * aspect), short) if rng.random() < 0.8 else (short, int(short * aspect))
    # Background: a random two-colour gradient with low-frequency blotches.
    c0, c1 = rng.uniform(30, 225, 3), rng.uniform(30, 225, 3)
    t = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    img = np.broadcast_to(c0 * (1 - t) + c1 * t, (h, w, 3)).astype(np.float32)
    blot = Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
    img = 0.7 * img + 0.3 * np.asarray(blot, np.float32)
    canvas = Image.fromarray(img.astype(np.uint8))
    # Clutter: distractor shapes from every class, greyish, small: the class is not "any shape".
    for _ in range(int(rng.integers(4, 12))):
        s = CLASSES[int(rng.integers(len(CLASSES)))][0]
        r = short * rng.uniform(0.04, 0.12)
        m = _mask(s, (w, h), rng.uniform(0, w), rng.uniform(0, h), r, rng.uniform(0, 2 * math.pi))
        grey = rng.uniform(60, 200) + rng.uniform(-25, 25, 3)
        canvas.paste(Image.new("RGB", (w, h), tuple(int(x) for x in grey)), mask=m)
    # The object(s) of the class.
    shape, texture, hue = CLASSES[label]
    for _ in range(1 + int(rng.random() < 0.3)):
        r = short * rng.uniform(0.15, 0.38)
        cx, cy = rng.uniform(r * 0.6, w - r * 0.6), rng.uniform(r * 0.6, h - r * 0.6)
        m = _mask(shape, (w, h), cx, cy, r, rng.uniform(0, 2 * math.pi))
        fill = _texture(texture, w, h, rng, _colour(rng, hue))
        canvas.paste(Image.fromarray(fill.clip(0, 255).astype(np.uint8)), mask=m.filter(ImageFilter.GaussianBlur(0.8)))
    out = np.asarray(canvas, np.float32) + rng.normal(0, 5.0, (h, w, 3)).astype(np.float32)
    buf = io.BytesIO()
    Image.fromarray(out.clip(0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90, subsampling=2)
    return buf.getvalue()


def _write(job):
    path, split, label, index, seed = job
    data = render(split, label, index, seed)
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


def generate(cache: Path, per_class: int | None = None, seed: int = SEED, progress: bool = True) -> Path:
    """Make (once) and return the dataset folder; an existing complete one is reused."""
    per_class = per_class or DEFAULT_PER_CLASS
    root = Path(cache) / f"embedded-v{VERSION}-{per_class}"
    done = root / "MANIFEST.json"
    if done.exists():
        return root
    tmp = root.with_name(root.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    counts = {"train": per_class, "val": max(1, per_class // 4)}
    jobs = []
    for split, n in counts.items():
        for label, name in enumerate(NAMES):
            (tmp / split / name).mkdir(parents=True, exist_ok=True)
            jobs += [(str(tmp / split / name / f"{split}_{label:02d}_{i:05d}.jpg"), split, label, i, seed) for i in range(n)]
    total = 0
    with ProcessPoolExecutor(max_workers=max(1, min(len(os.sched_getaffinity(0)), 8))) as pool:
        for size in tqdm(pool.map(_write, jobs, chunksize=16), total=len(jobs), desc=f"generating {root.name}", unit="img", disable=not progress):
            total += size
    digest = hashlib.sha1()
    for path, *_ in jobs:  # content hash, so "byte-identical" is checkable from the manifest
        digest.update(Path(path).read_bytes())
    manifest = {"version": VERSION, "seed": seed, "classes": NAMES, "counts": {s: n * len(NAMES) for s, n in counts.items()},
                "bytes": total, "sha1": digest.hexdigest()}
    (tmp / "MANIFEST.json").write_text(json.dumps(manifest, indent=1))
    try:
        os.replace(tmp, root)  # atomic: a concurrent generator's finished copy wins
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return root
