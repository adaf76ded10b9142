"""`python -m bench.class_subset`: some classes of a data set as an ImageFolder tree of its own,
for transfer learning (pretrain on some classes, fine-tune on the others).

    python -m bench.class_subset --data fashion-mnist --classes 0-5
    python -m bench.class_subset --data fashion-mnist --classes 6-9 --train-per-class 200

prints the new tree's root, $LOADERBENCH_DATA/subsets/<name>/{train,val}/<class>/, to pass as
`--data`. Its files are hard links to the source's (copies where the filesystem refuses links),
so a subset costs no space; val keeps every image of the chosen classes, train the first N per
class in ImageFolder order with --train-per-class. The tree is built in a temporary folder and
renamed into place, so an existing tree is complete and is reused as it is.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from loaders.datasets import DataError, cache_root, resolve
from loaders.datasets.dataset import publish


def parse_classes(spec: str, classes: list[str]) -> list[str]:
    """'0-5', '0,2,7' (indices into the sorted class list) or class names, comma-separated."""
    picked: list[str] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        lo, sep, hi = part.partition("-")
        if part in classes:
            picked.append(part)
        elif lo.isdigit() and (not sep or hi.isdigit()):
            first, last = int(lo), int(hi) if sep else int(lo)
            if not first <= last < len(classes):
                raise DataError(f"--classes {part}: indices run 0-{len(classes) - 1} for this data set ({', '.join(classes)})")
            picked += classes[first:last + 1]
        else:
            raise DataError(f"--classes {part!r}: not a class index, range (0-5) or name; classes: {', '.join(classes)}")
    if not picked:
        raise DataError("--classes: name at least one class")
    return list(dict.fromkeys(picked))  # in the order given, once each


def _link(src: str, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or links not allowed
        shutil.copy2(src, dst)


def make_subset(dataset, classes: list[str], dst: Path, train_per_class: int | None = None) -> Path:
    """Write `classes` of `dataset` (a loaders Dataset) as an ImageFolder at dst, once."""
    if (dst / "train").is_dir() and (dst / "val").is_dir():
        return dst
    tmp = dst.with_name(dst.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for split in ("train", "val"):
        taken = {c: 0 for c in classes}
        for path, label in dataset.samples(split):
            name = dataset.classes[label]
            if name not in taken or (split == "train" and train_per_class is not None and taken[name] >= train_per_class):
                continue
            (tmp / split / name).mkdir(parents=True, exist_ok=True)
            _link(path, tmp / split / name / Path(path).name)
            taken[name] += 1
        empty = [c for c, n in taken.items() if n == 0]
        if empty:
            shutil.rmtree(tmp, ignore_errors=True)
            raise DataError(f"{dataset.root}: no {split} images of class {empty[0]!r}")
    (tmp / "SOURCE.txt").write_text(f"classes {', '.join(classes)} of {dataset.root}; train "
                                    f"{'all' if train_per_class is None else f'first {train_per_class} per class'}, val all\n")
    return publish(tmp, dst)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.class_subset", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="the source: anything --data of bench.run takes")
    p.add_argument("--classes", required=True, help="'0-5', '0,2,7' (sorted class indices) or class names")
    p.add_argument("--train-per-class", type=int, default=None, help="keep the first N train images of each class")
    p.add_argument("--name", default=None, help="folder name under $LOADERBENCH_DATA/subsets (default: from the source and classes)")
    args = p.parse_args(argv)
    if args.train_per_class is not None and args.train_per_class < 1:
        print("error: --train-per-class takes a positive number", file=sys.stderr)
        return 2
    try:
        source = resolve(args.data, progress=False)
        classes = parse_classes(args.classes, source.classes)
        tail = f"-{args.train_per_class}" if args.train_per_class else ""
        name = args.name or f"{source.name}-c{args.classes.replace(',', '.')}{tail}"
        root = make_subset(source, classes, cache_root() / "subsets" / name, args.train_per_class)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
