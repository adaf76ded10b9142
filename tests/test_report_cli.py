"""`python -m bench.report --compare A B`, `--since`, `--summary` and bad arguments."""
from __future__ import annotations

import copy
import json

import pytest

from bench.report.compare import CompareError, resolve
from bench.results import Records
from tests.fixtures import handmade as H
from tests.test_report import cli


@pytest.fixture()
def files(tmp_path):
    cpu, gpu = tmp_path / "cpu.jsonl", tmp_path / "gpu.jsonl"
    H.write(cpu, H.cpu_records())
    H.write(gpu, H.gpu_records())
    return cpu, gpu


def newer_run(recs, ips):
    """A later run of the CPU default torchvision loader configuration at `ips`."""
    last = [r for r in recs if r["kind"] == "loader" and r["loader"] == "torchvision" and not r["config"]["loader_options"]][-1]
    r = copy.deepcopy(last)
    r.update(time="2026-11-26T09:00:00+00:00", run_id="later")
    r["metrics"]["images_per_sec"] = ips
    r["config"]["backend"]["construct_s"] = 9.9  # a per-run counter: still the same configuration
    return r


def test_compare_two_files_flags_a_regression(files, tmp_path):
    recs = H.cpu_records()
    b = tmp_path / "b.jsonl"
    H.write(b, recs + [newer_run(recs, 900.0)])
    rc, out, _ = cli("--compare", files[0], b, files[0])
    assert rc == 1  # a regression was flagged
    (line,) = [ln for ln in out.splitlines() if ln.startswith("loader") and "torchvision / train" in ln and " default " in ln]
    assert "1,200" in line and "900" in line and "-25.0%" in line and "REGRESSION" in line
    assert "1 regressions" in out


def test_compare_two_machines_by_label_as_json(files):
    rc, out, err = cli("--compare", "Test CPU", "Test H100", *files, "--json")
    assert rc == 0, err
    rows = [json.loads(ln) for ln in out.splitlines()]
    (tv,) = [r for r in rows if r["kind"] == "loader" and r["workload"] == "torchvision / train / embedded"]
    assert (tv["A"], tv["B"], tv["change"], tv["flag"]) == ("1,200", "8,000", "+566.7%", "")
    assert "device" not in tv["settings that differ"]  # machine-resolved settings never block the match
    assert "configurations compared" in err


def test_compare_a_git_commit():
    label, recs = resolve("HEAD", Records())
    assert label == "commit HEAD" and len(recs) > 0 and all(r["schema"] == 2 for r in recs)


def test_compare_argument_that_names_nothing(files):
    rc, out, err = cli("--compare", "no-such-thing-anywhere", files[0], files[0])
    assert rc == 2 and out == ""
    assert err.strip().splitlines() == [err.strip()] and "neither a records file, a machine id or label" in err
    with pytest.raises(CompareError, match="matches 2 machines"):
        resolve("Test", Records(H.cpu_records() + H.gpu_records()))


def test_since_prints_this_runs_table_then_where_things_went(files, tmp_path):
    extra = tmp_path / "extra.jsonl"
    recs = H.cpu_records()
    H.write(extra, [newer_run(recs, 1250.0)])
    rc, out, err = cli(*files, extra, "--out", tmp_path / "rep", "--since", "2026-11-26T00:00:00")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["machine", "kind"]  # the run's table comes first
    (mine,) = [ln for ln in lines if "1,250" in ln]
    assert "torchvision" in mine and "loader" in mine
    assert f"records: {extra}" in out and f"report: {tmp_path / 'rep' / 'REPORT.md'}" in out
    assert (tmp_path / "rep" / "report.html").exists()
    rc, _, err = cli(*files, "--out", tmp_path / "rep2", "--since", "yesterday")
    assert rc == 2 and "--since 'yesterday': not an ISO time" in err and not (tmp_path / "rep2").exists()


def test_summary_and_missing_file(files, tmp_path):
    rc, out, _ = cli(*files, "--summary")
    assert rc == 0
    (tv,) = [ln for ln in out.splitlines() if ln.startswith(H.CPU["label"]) and " loader " in ln and " torchvision " in ln and " default " in ln]
    assert "1,200" in tv and " 3 " in tv
    rc, out, err = cli(tmp_path / "nope.jsonl")
    assert rc == 2 and err.strip() == f"error: no such records file: {tmp_path / 'nope.jsonl'}"
    rc, out, err = cli(tmp_path)
    assert rc == 2 and err.strip() == f"error: a folder, not a records file: {tmp_path} (name its .jsonl files)"



@pytest.mark.parametrize("args,says", [(["--sumary"], "did you mean --summary?"), (["--compare", "x"], "expected 2 arguments")])
def test_a_bad_argument_is_one_line_exit_2(args, says, capsys):
    from bench.report.cli import main

    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and says in line, line


def test_the_report_says_which_files_it_read(files, tmp_path):
    rc, out, _ = cli(*files, "--out", tmp_path / "rep")
    assert rc == 0
    assert f"read 2 records files: {files[0]}, {files[1]}" in out
