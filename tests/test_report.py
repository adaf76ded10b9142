"""The report, from fixture records of two machines (a 2-core CPU box and an H100)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bench import report

FIXTURE = Path(__file__).parent / "fixtures" / "records.jsonl"
CPU, GPU = "AMD EPYC 9R14 96-Core Processor (2 cores)", "NVIDIA H100 80GB HBM3 x1 (16 cores)"


@pytest.fixture(scope="module")
def tables():
    recs, skipped = report.read([FIXTURE])
    assert not skipped
    return {t.title: t for t in report.build_tables(recs, report.machines(recs))}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return report.report([FIXTURE], out)


def rows(t, **match):
    """Rows of a table as dicts, filtered by column values."""
    out = [dict(zip(t.headers, cells), cls=cls) for cells, cls in t.rows]
    return [r for r in out if all(r[k] == v for k, v in match.items())]


def test_machines_grouped_by_fingerprint(tables):
    ms = rows(tables["Machines"])
    assert [m["machine"] for m in ms] == [CPU, GPU]  # CPU-only machines first
    assert [m["records"] for m in ms] == ["16", "16"]
    assert ms[1]["GPU"] == "NVIDIA H100 80GB HBM3 ×1" and ms[1]["torch"] == "2.11.0+cu130" and ms[0]["DALI"] == "2.4.0"


def test_loader_table_numbers_and_ceiling_ratio(tables):
    t = tables["Loader-only throughput"]
    (tv,) = rows(t, backend="torchvision", split="train", machine=CPU)
    assert (tv["images/s"], tv["p10"], tv["p90"], tv["ceiling ratio"]) == ("1,200", "960", "1,320", "0.63")  # the latest of two
    (val,) = rows(t, backend="torchvision", split="val", machine=CPU)
    assert val["ceiling ratio"] == f"{1800 / 1915:.2f}*"  # not recorded: computed from the ceiling record
    (h,) = rows(t, backend="torchvision-gpu", machine=GPU)
    assert h["images/s"] == "20,000" and h["ceiling ratio"] == "2.50"
    # two configurations of the same workload are two rows, each with its config
    assert sorted(r["config"].split(",")[0] for r in rows(t, backend="dali", machine=CPU)) == ["batch_size 32", "batch_size 64"]
    (ff,) = rows(t, backend="ffcv")
    assert ff["images/s"] == "—" and ff["status"].startswith("unavailable: ffcv") and ff["cls"] == "fail"


def test_training_table(tables):
    t = tables["Training throughput"]
    (r,) = rows(t, arch="resnet18", loader="torchvision", machine=GPU)
    assert (r["images/s"], r["synthetic img/s"], r["ratio to synthetic"], r["data wait"]) == ("5,400", "12,000", "0.45", "55%")
    (g,) = rows(t, arch="resnet18", loader="torchvision-gpu")
    assert g["ratio to synthetic"] == f"{11500 / 12000:.2f}"  # computed from compute_ips when not recorded
    (e,) = rows(t, arch="resnet50", loader="torchvision", machine=CPU)
    assert e["status"].startswith("error: RuntimeError") and e["images/s"] == "—"


def test_accuracy_table(tables):
    t = tables["Accuracy"]
    (a,) = rows(t, arch="demo_net", machine=CPU, kind="accuracy")
    assert (a["top-1"], a["top-5"], a["epochs"], a["wall time"]) == ("55.0%", "90.0%", "3", "2.0 min")
    (e,) = rows(t, arch="resnet18", kind="eval")
    assert e["top-1"] == "41.2%"
    assert report.acc(0.5) == 50 and report.acc(76.1) == 76.1


def test_speedups_say_what_differs(tables):
    t = tables["Speedups between machines"]
    (s,) = rows(t, kind="loader", workload="torchvision / train / embedded")
    assert (s["baseline"], s["machine"], s["speedup"]) == (CPU, GPU, f"{5800 / 1200:.2f}×")
    assert "batch_size: 64 → 256" in s["config differs"] and "device: cpu → cuda" in s["config differs"]
    (c,) = rows(t, kind="ceiling")
    assert c["config differs"] == "device: cpu → cuda"


def test_regression_flag(tables):
    t = tables["Latest vs previous"]
    (reg,) = rows(t, flag="REGRESSION")
    assert (reg["machine"], reg["workload"], reg["change"]) == (CPU, "torchvision / train / embedded", "-14.3%")
    assert reg["notes"] == "commit: aaaa111 → bbbb222" and reg["cls"] == "regress"
    (ok,) = rows(t, machine=GPU, workload="torchvision / train / embedded")
    assert ok["change"] == "-3.3%" and ok["flag"] == ""  # within the 10% threshold
    (diff,) = rows(t, workload="dali / train / embedded", machine=CPU)
    assert diff["flag"] == "not compared" and diff["notes"] == "config differs: batch_size: 32 → 64"


def test_config_key_ignores_output_and_names_nested_differences():
    rec = lambda **c: {"kind": "loader", "loader": "torchvision", "variant": "train", "arch": None,
                       "dataset": {"name": "d", "fingerprint": "f"}, "config": c}
    a, b = rec(batch_size=64, out="a.jsonl", backend={"workers": 2}), rec(batch_size=64, out="b.jsonl", backend={"workers": 16})
    assert report.config_key(a) == report.config_key(rec(batch_size=64, out="elsewhere", backend={"workers": 2}))
    assert report.config_key(a) != report.config_key(b)
    assert report.differs(report.config_of(a), report.config_of(b)) == ["backend.workers: 2 → 16"]


def test_failure_after_ok_is_a_regression_and_bad_lines_skipped(tmp_path):
    lines = FIXTURE.read_text().splitlines()
    r = json.loads(lines[3])  # CPU torchvision train, latest
    r.update(time="2026-11-26T00:00:00+00:00", status="error", error="boom", metrics={})
    f = tmp_path / "r.jsonl"
    f.write_text("\n".join(lines + [json.dumps(r), "{not json"]) + "\n")
    recs, skipped = report.read([f])
    assert skipped == [f"{f}:{len(lines) + 2}"]
    t = report.history(recs, report.machines(recs))
    (row,) = rows(t, workload="torchvision / train / embedded", machine=CPU)
    assert (row["change"], row["flag"]) == ("error", "REGRESSION")


def test_outputs_written_and_html_self_contained(built):
    pngs = sorted(p.name for p in built["plots"].glob("*.png"))
    assert pngs == ["accuracy_vs_time.png", "data_wait.png", "loader_throughput.png", "train_throughput.png"]
    for p in built["plots"].glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    page = built["html"].read_text()
    assert not re.search(r"https?://", page)
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing loaded from outside the file
    assert page.count('src="data:image/png;base64,') == 4
    root = ET.fromstring(page.split("\n", 1)[1])  # well-formed: every tag closed, every text escaped
    assert len(root.findall(".//table")) == 8
    md = built["md"].read_text()
    assert "| torchvision | train | AMD EPYC 9R14 96-Core Processor (2 cores) | 1,200 |" in md
    assert "**REGRESSION**" in md and "![loader_throughput.png](plots/loader_throughput.png)" in md


def test_cli_and_summary(tmp_path, capsys):
    assert report.main([str(FIXTURE), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "REPORT.md").exists() and (tmp_path / "report.html").exists()
    assert report.main([str(FIXTURE), "--summary"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"loader +torchvision-gpu train +20,000 +2\.50", out)
    assert re.search(r"accuracy +demo_net torchvision +800 .* 55\.0%", out)


@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian chromium not installed")
def test_html_renders_in_headless_chromium(built, tmp_path):
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path}",
           "--dump-dom", built["html"].resolve().as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
    assert dom.count("<table>") == 8 and "Loader-only throughput" in dom and "REGRESSION" in dom
    assert dom.count("<img ") == 4
