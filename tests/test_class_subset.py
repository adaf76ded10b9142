"""bench.class_subset: some classes of a data set as their own ImageFolder tree."""
from __future__ import annotations

import os

import pytest

from bench.class_subset import main, make_subset, parse_classes
from loaders.datasets import DataError, scan

CLASSES = ["apple", "big cat", "ñandú"]  # the tiny set's classes, sorted


def test_parse_classes():
    assert parse_classes("1-2", CLASSES) == ["big cat", "ñandú"]
    assert parse_classes("2,0", CLASSES) == ["ñandú", "apple"] and parse_classes("big cat,1", CLASSES) == ["big cat"]
    with pytest.raises(DataError, match=r"^--classes 1-3: indices run 0-2 for this data set"):
        parse_classes("1-3", CLASSES)
    with pytest.raises(DataError, match=r"^--classes 'pear': not a class index"):
        parse_classes("pear", CLASSES)


def test_subset_tree_scans_and_links_the_source_files(tiny, tmp_path):
    root = make_subset(tiny, ["big cat", "ñandú"], tmp_path / "sub", train_per_class=2)
    sub = scan(root, progress=False)
    assert sub.classes == ["big cat", "ñandú"]
    assert [label for _, label in sub.samples("train")] == [0, 0, 1, 1]
    source_val = [p for p, label in tiny.samples("val") if tiny.classes[label] != "apple"]
    assert len(sub.samples("val")) == len(source_val) == 5
    first = sub.samples("train")[0][0]
    assert os.path.samefile(first, [p for p, label in tiny.samples("train") if tiny.classes[label] == "big cat"][0])
    assert make_subset(tiny, ["apple"], root) == root  # an existing tree is reused as it is


def test_cli_prints_the_root_and_refuses_bad_input(tiny_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LOADERBENCH_DATA", str(tmp_path))
    assert main(["--data", str(tiny_root), "--classes", "0-1", "--train-per-class", "3"]) == 0
    out = capsys.readouterr().out.strip()
    assert out == str(tmp_path / "subsets" / f"{tiny_root.name}-c0-1-3")
    assert scan(out, progress=False).classes == ["apple", "big cat"]
    assert main(["--data", str(tiny_root), "--classes", "7"]) == 2
    assert capsys.readouterr().err.startswith("error: --classes 7: indices run 0-2")
