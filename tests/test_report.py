"""The report from hand-made records of two machines: a default and its variant, repeated runs
whose per-run counters differ, a corrupt line, scaling curves, accuracy and transfer runs.
Numbers are checked in `--json` and in the Markdown; the HTML is checked for being
self-contained and rendered in headless Chromium."""
from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from bench.report.cli import main
from tests.fixtures import handmade as H

CPU, GPU = H.CPU["label"], H.GPU["label"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("records")
    cpu, gpu = d / "cpu.jsonl", d / "gpu.jsonl"
    H.write(cpu, H.cpu_records(), corrupt_after=3)  # line 4: the first half of a record
    H.write(gpu, H.gpu_records())
    return cpu, gpu


def cli(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in args])
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def rows(files):
    rc, out, _ = cli(*files, "--json")
    assert rc == 0
    return [json.loads(line) for line in out.splitlines()]


@pytest.fixture(scope="module")
def built(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    maps = out / "feature_maps" / "seed_cnn"
    maps.mkdir(parents=True)
    import matplotlib.pyplot as plt

    for name in ("input.png", "filters-conv1.png"):
        plt.imsave(maps / name, [[0.0, 1.0], [1.0, 0.0]])
    rc, stdout, stderr = cli(*files, "--out", out)
    assert rc == 0, stderr
    return {"dir": out, "md": (out / "REPORT.md").read_text(), "html": (out / "report.html").read_text(), "stderr": stderr}


def row(rows, **match):
    (r,) = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    return r


def md_row(md: str, *cells: str) -> str:
    """The one Markdown table row that starts with these cells."""
    start = "| " + " | ".join(cells) + " |"
    (line,) = [ln for ln in md.splitlines() if ln.startswith(start)]
    return line


def test_corrupt_line_is_skipped_named_and_counted(files, built):
    assert f"warning: skipped {files[0]}:4: not JSON" in built["stderr"]
    assert f"Skipped 1 unreadable line(s): {files[0]}:4: not JSON" in built["md"]


def test_json_and_compare_count_what_they_skipped(files):
    rc, out, err = cli(*files, "--json")  # files[0] has one truncated line
    assert rc == 0 and all(json.loads(ln) for ln in out.splitlines())
    assert err.splitlines()[-1] == "1 unreadable line(s) skipped"
    rc, out, err = cli("--compare", files[0], files[0], files[0])
    assert rc == 0 and "1 unreadable line(s) skipped" in err


def test_headline_is_the_latest_default_run_with_n_and_spread(rows):
    r = row(rows, machine=CPU, kind="loader", loader="torchvision", split="train", options={})
    # three runs are one configuration: their construct_s/first_batch_s differed (per-run counters)
    assert (r["images_per_sec"], r["n"], r["spread"], r["commit"]) == (1200.0, 3, [1100.0, 1200.0], "bbb1111")
    assert r["ceiling_ratio"] == pytest.approx(0.6)  # ÷ the machine's decode ceiling (2,000)
    assert r["steady_images_per_sec"] is None and r["stall_s"] is None  # not measured: schema-1 records
    assert not any(k.endswith(("construct_s", "first_batch_s")) for k in r["settings"])
    assert {"out", "json", "progress", "mode", "loader", "split"}.isdisjoint(r["settings"])
    assert r["settings"]["backend.pool"] == "threads" and r["settings"]["batch_size"] == 64


def test_variant_is_its_own_row_and_the_ceiling_never_a_loader(rows):
    v = row(rows, machine=CPU, kind="loader", loader="torchvision", options={"pool": "processes"})
    assert (v["images_per_sec"], v["n"]) == (600.0, 1)
    assert not [r for r in rows if r["kind"] == "loader" and r["role"] == "ceiling"]
    syn = row(rows, machine=CPU, kind="train", loader="synthetic")
    assert syn["role"] == "ceiling" and syn["images_per_sec"] == 500.0


def test_train_rows(rows):
    t = row(rows, machine=CPU, kind="train", loader="torchvision")
    assert t["ratio_to_synthetic"] == pytest.approx(0.8) and t["synthetic_images_per_sec"] == 500.0  # 400 ÷ 500
    assert (t["data_wait_frac"], t["steady_images_per_sec"], t["stall_s"], t["arch"]) == (0.2, 480.0, 1.5, "resnet18")
    g = row(rows, machine=GPU, kind="train", loader="torchvision")
    assert g["ratio_to_synthetic"] == 0.8 and g["machine_id"] == "gpu0000000"


def test_plan_rows_from_the_measured_curve(rows):
    tv = row(rows, kind="plan", loader="torchvision")
    assert (tv["machine"], tv["arch"], tv["synthetic_images_per_sec"], tv["target_images_per_sec"]) == (GPU, "resnet50", 5000.0, 4750.0)
    assert (tv["workers_needed"], tv["gpus_per_host"], tv["cores"], tv["workers_needed_upper_bound"]) == (8, 2, 16, False)
    assert tv["points"] == {"1": 900.0, "2": 1800.0, "4": 3500.0, "8": 5000.0, "16": 7000.0}
    assert (tv["training_ratio_to_synthetic"], tv["training_data_wait_frac"]) == (0.8, 0.1)  # the measured check
    ff = row(rows, kind="plan", loader="ffcv")  # one loader-only point at 16 workers, below the target
    assert (ff["workers_needed"], ff["gpus_per_host"], ff["status"], ff["points"]) == (None, None, "not reached", {"16": 3000.0})
    assert ff["training_ratio_to_synthetic"] is None and ff["n"] == 1  # n: the measured points of the curve
    assert not [r for r in rows if r["kind"] == "plan" and r["machine"] == CPU]  # no GPU: nothing to plan


def test_accuracy_rows(rows):
    a = row(rows, kind="accuracy", arch="seed_cnn", dataset="fashion-mnist")
    assert (a["top1"], a["top5"], a["epochs"], a["params"], a["eval_images_per_sec"], a["transfer"]) == (0.88, 0.995, 2, 1234567, 9000.0, None)
    assert sorted(r["transfer"] for r in rows if r["kind"] == "accuracy" and r["transfer"]) == ["frozen", "full", "scratch"]


def test_markdown_matrix_per_machine(built):
    md = built["md"]
    tv = md_row(md, "torchvision", "1,200 (n=3; 1,100–1,200 over 2 at bbb1111)", "0.60×*")
    assert "400 (0.80× synthetic, 20% data wait)" in tv
    assert "resnet18 training img/s (synthetic 500)" in md
    md_row(md, "ffcv", "1,500", "0.75×")  # a recorded ratio: no *
    assert not re.search(r"^\| synthetic ", md, re.M)  # the ceiling is in the header, never a row
    md_row(md, "torchvision", "8,000", "—")  # the GPU machine: no decode ceiling measured there


def test_markdown_variants_across_and_plan(built):
    md = built["md"]
    v = md_row(md, "loader", "torchvision", "train", "pool=processes")
    assert v.endswith("| 600 | 1,200 (n=3; 1,100–1,200 over 2 at bbb1111) | 0.50× |")
    x = md_row(md, "loader", "torchvision / train / embedded", GPU)
    assert "| 8,000 | 6.67× |" in x
    p = md_row(md, GPU, "resnet50", "default", "5,000", "4,750", "torchvision")
    # met loader-only, missed in training (0.80×): the measured figure stands beside the plan, flagged
    assert p.endswith("| 8 | 2 of 16 cores | 0.80× synthetic, 10% data wait (16 workers) — below the target: see the steady-state table |")
    ff = md_row(md, GPU, "resnet50", "default", "5,000", "4,750", "ffcv")
    assert "not reached: best 3,000 img/s at 16 workers = 60% of synthetic" in ff and ff.endswith("| not measured |")
    assert "Model: a GPU trains at its synthetic rate" in md


def test_markdown_steady_state_and_not_measured(built):
    md = built["md"]
    r = md_row(md, "train", "torchvision", "resnet18", "400", "480")
    assert r.endswith("| 1.50 s | 2 | 1 | 1.20 s | 300–490 | 30 steps (windows of 5) |")
    assert re.search(r"Steady-state rate and stall time not measured for [^.]*loader torchvision train", md)
    assert "2,800,000" not in md and "2.8e" not in md  # old per-step "percentiles" are not shown
    # an older training record: its median single step against synthetic tells a stall from a slow loader
    assert md_row(md, "torchvision", "resnet50", "4,000", "4,900", "5,000", "0.98×", "10%")


def test_markdown_accuracy_transfer_and_feature_maps(built):
    md = built["md"]
    a = md_row(md, "seed_cnn", "fashion-mnist", CPU, "torchvision", "default", "88.0%", "99.5%", "2", "41.0 s", "2,500", "9,000", "1.2 M")
    assert "small-images" in a
    for mode, top1 in (("frozen", "70.0%"), ("full", "85.0%"), ("scratch", "60.0%")):
        assert f"| {mode} |" in md_row(md, "seed_cnn", "fmnist-5-9", CPU, mode) and top1 in md_row(md, "seed_cnn", "fmnist-5-9", CPU, mode)
    assert "![seed_cnn: filters-conv1](feature_maps/seed_cnn/filters-conv1.png)" in md
    assert "![transfer.png](plots/transfer.png)" in md and "![scaling.png](plots/scaling.png)" in md


def test_sections_without_records_say_so(files, tmp_path):
    rc, _, err = cli(files[1], "--out", tmp_path)  # the GPU file alone: no accuracy, transfer, feature maps
    assert rc == 0, err
    md = (tmp_path / "REPORT.md").read_text()
    assert "No accuracy records yet" in md and "No transfer-learning records yet" in md and "No feature maps yet" in md


def test_plots_and_html_self_contained(built):
    pngs = sorted(p.name for p in (built["dir"] / "plots").glob("*.png"))
    assert pngs == sorted(["accuracy_vs_time.png", "data_wait.png", "loader_throughput.png", "scaling.png", "train_throughput.png", "transfer.png"])
    for p in (built["dir"] / "plots").glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    page = built["html"]
    assert not re.search(r"https?://", page) and not re.search(r'(src|href)="(?!data:)', page)
    assert page.count('src="data:image/png;base64,') == 6 + 2  # the plots and the two feature maps
    root = ET.fromstring(page.split("\n", 1)[1])  # well-formed: every tag closed, every text escaped
    assert len(root.findall(".//table")) == built["md"].count("\n|---")


@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian chromium not installed")
def test_html_renders_in_headless_chromium(built, tmp_path):
    html = built["dir"] / "report.html"
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path}",
           "--dump-dom", html.resolve().as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=90).stdout
    assert dom.count("<table>") == built["md"].count("\n|---")
    assert "Planning: cores per GPU" in dom and "6.67×" in dom and dom.count("<img ") == 8


def test_a_recipe_rule_set_otherwise_is_an_experiment_of_its_own():
    """small-images with --min-steps 0 (its stretch off) must neither hide nor be hidden by the
    recipe's own run on the same data: each is the headline of its own row."""
    from bench.report import identity as I

    def acc(min_steps):
        return H.rec("accuracy", H.CPU, loader="torchvision", arch="seed_cnn", data="fashion-mnist-600",
                     config={"mode": "accuracy", "recipe": "small-images", "min_steps": min_steps})

    recipe_run, rule_off, old_recipe = acc(1000), acc(0), {**acc(0), "config": {**acc(0)["config"], "recipe": "gone-recipe"}}
    assert I.workload(recipe_run)[-1] == "small-images"
    assert I.workload(rule_off)[-1] == "small-images · min_steps=0"
    assert I.headline_key(recipe_run) != I.headline_key(rule_off)
    assert I.workload(old_recipe)[-1] == "gone-recipe"  # a recipe no longer in bench/recipes: nothing to compare with


def test_the_ceiling_loader_alone_has_no_history_row(tmp_path):
    """Its loader-only rate (one device tensor handed back) is no loader figure: a change in it
    is noise, never a regression of a loader. A real loader's drop is flagged."""
    recs = [H.rec("loader", H.CPU, loader="synthetic", variant="train", metrics={"images_per_sec": v}) for v in (8e7, 2e7)]
    recs += [H.rec("loader", H.CPU, loader="torchvision", variant="train", backend=H.tv_backend(), metrics={"images_per_sec": v})
             for v in (1000.0, 500.0)]
    f = tmp_path / "r.jsonl"
    H.write(f, recs)
    rc, _, err = cli(f, "--out", tmp_path / "out")
    assert rc == 0, err
    hist = (tmp_path / "out" / "REPORT.md").read_text().split("Latest vs previous", 1)[1].split("\n#", 1)[0]
    assert "REGRESSION" in md_row(hist, CPU, "loader", "torchvision / train / embedded")
    assert "synthetic" not in hist


def test_json_rows_are_the_readme_schema(rows):
    """Every key of every --json row is in the README's field table for its kind, and every field
    the table gives a kind is in that kind's rows: the documentation is the schema."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    table = readme.split("| field | rows | meaning |", 1)[1].split("\n\n", 1)[0]
    documented = {}  # kind -> fields
    for line in table.splitlines()[2:]:
        fields, kinds = line.split(" | ")[0], line.split(" | ")[1]
        kinds = ["loader", "train", "eval", "accuracy", "plan"] if kinds == "all" else kinds.split(", ")
        for f in re.findall(r"`(\w+)`", fields):
            for k in kinds:
                documented.setdefault(k, set()).add(f)
    seen = {r["kind"] for r in rows}
    assert {"loader", "train", "accuracy", "plan"} <= seen
    for r in rows:
        assert set(r) == documented[r["kind"]], (r["kind"], set(r) ^ documented[r["kind"]])


def test_matrix_columns_compare_loaders(tmp_path):
    """Top-1 columns only for workloads two loaders ran (an arch sweep with one loader is the
    per-architecture table's); two names that ran one pipeline are said to be one."""
    cpu_dali = {"backend": "dali", "pipeline": "cpu", "workers": 2}
    a = {"mode": "accuracy", "recipe": "cpu-demo", "res": 64}
    recs = [H.rec("loader", H.CPU, loader=n, variant="train", backend=cpu_dali, metrics={"images_per_sec": v})
            for n, v in (("dali", 1000.0), ("dali-cpu", 1050.0))]
    recs += [H.rec("accuracy", H.CPU, loader=n, arch="demo_net", config=a, metrics={"top1": t}) for n, t in (("dali", 0.6), ("ffcv", 0.7))]
    recs += [H.rec("accuracy", H.CPU, loader="dali", arch=x, config=a, data="fashion-mnist", metrics={"top1": 0.9}) for x in ("alexnet", "vgg11_bn")]
    f = tmp_path / "r.jsonl"
    H.write(f, recs)
    rc, _, err = cli(f, "--out", tmp_path / "out")
    assert rc == 0, err
    md = (tmp_path / "out" / "REPORT.md").read_text()
    header = next(ln for ln in md.splitlines() if ln.startswith("| loader | loader-only train img/s"))
    assert [c for c in header.split(" | ") if c.startswith("top-1")] == ["top-1 demo_net (embedded)"]
    assert md_row(md, "dali", "1,000").endswith("| 60.0% | ok |") and md_row(md, "ffcv", "—").endswith("| 70.0% | ok |")
    assert "2 accuracy workload(s) run with one loader only (alexnet on fashion-mnist, vgg11_bn on fashion-mnist)" in md
    assert "dali and dali-cpu ran with identical settings on this machine (backend dali, pipeline cpu, workers 2)" in md


def test_accuracy_curve_is_the_run_that_follows_its_recipe():
    """The accuracy-vs-time plot draws, per architecture and dataset, the run the tables show: a
    later --min-steps 0 ablation does not replace the recipe's run (it is drawn only alone)."""
    from bench.report.plot_curves import accuracy_curves

    def epochs(run, min_steps, top1):
        c = {"mode": "accuracy", "recipe": "small-images", "min_steps": min_steps}
        return [H.rec("epoch", H.CPU, loader="torchvision", arch="seed_cnn", config=c, data="fashion-mnist-600", run_id=run,
                      metrics={"epoch": e, "top1": top1, "wall_s": 10.0 * e}) for e in (1, 2)]

    recs = [dict(r, status="ok") for r in epochs("recipe", 1000, 0.89) + epochs("ablation", 0, 0.79)]
    (drawn,) = accuracy_curves(recs).values()
    assert {r["run_id"] for r in drawn} == {"recipe"}
    (alone,) = accuracy_curves([r for r in recs if r["run_id"] == "ablation"]).values()
    assert alone[-1]["metrics"]["top1"] == 0.79
