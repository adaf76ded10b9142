"""Records files are append-only logs that can be damaged: every reader skips a bad line with
a message naming file and line, counts it, and goes on; two processes appending at once lose
no line."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from bench.harness.ceiling_mode import latest_ceiling
from bench.results import append, load, make_record

REPO = Path(__file__).resolve().parent.parent


def ceiling_rec(ips, hw_id="hw1", res=224) -> dict:
    r = make_record("ceiling", variant="turbo", metrics={"images_per_sec": ips, "res": res}, config={"res": res})
    r["hardware"] = {**r["hardware"], "id": hw_id}
    return r


def test_bad_lines_are_skipped_named_and_counted(tmp_path, capsys):
    f = tmp_path / "r.jsonl"
    good = json.dumps(ceiling_rec(1000.0))
    no_hw, newer = json.loads(good), json.loads(good)
    no_hw["hardware"], newer["schema"] = "x", 99  # every table groups by the fingerprint; a newer writer's fields
    f.write_text("\n".join([good, good[:40], "[1, 2]", '{"no": "kind"}', "", "<<<<<<< HEAD", '{"kind": "loader"}',
                            json.dumps(no_hw), json.dumps(newer), good]) + "\n")
    recs = load([f])
    assert len(recs) == 2 and all(r["kind"] == "ceiling" for r in recs)
    assert [(s.line, s.reason.split(" (")[0]) for s in recs.skipped] == [
        (2, "not JSON"), (3, "not a record"), (4, "not a record"), (6, "not JSON"), (7, "no hardware fingerprint"),
        (8, "no hardware fingerprint"), (9, "schema 99 is newer than this code reads")]
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"warning: skipped {f}:2: not JSON") and len(err) == 7
    load([f])  # the same lines again: told once per process
    assert capsys.readouterr().err == ""


def test_old_records_are_upgraded_on_load(tmp_path):
    old = {"schema": 1, "kind": "loader", "loader": "ffcv", "config": {"out": "x", "backend": {"workers": 2, "construct_s": 0.5}},
           "metrics": {"images_per_sec": 10.0, "p50": 99.0}, "hardware": {"id": "hw1"}, "dataset": {}}
    f = tmp_path / "r.jsonl"
    f.write_text(json.dumps(old) + "\n")
    (r,) = load([f])
    assert r["schema"] == 2 and r["config"] == {"backend": {"workers": 2}} and r["status"] == "ok"
    assert r["metrics"] == {"images_per_sec": 10.0, "step_p50": 99.0, "backend": {"construct_s": 0.5}}


def test_the_ceiling_lookup_survives_a_corrupt_line(tmp_path):
    f = tmp_path / "r.jsonl"
    append(ceiling_rec(1500.0), f)
    with open(f, "a") as fh:
        fh.write('{"schema": 2, "kind": "ceil')  # a writer killed mid-line
    append(ceiling_rec(1700.0), f)  # starts on a new line: only the broken one is lost
    assert latest_ceiling(f, "hw1", 224) == 1700.0
    recs = load([f], warn=None)
    assert len(recs) == 2 and [s.line for s in recs.skipped] == [2]


def test_new_records_keep_counters_out_of_config():
    a = make_record("loader", loader="ffcv", config={"batch_size": 8, "backend": {"workers": 2, "order": "random", "construct_s": 0.4, "beton_cached": False}})
    b = make_record("loader", loader="ffcv", config={"batch_size": 8, "backend": {"workers": 2, "order": "random", "construct_s": 0.1, "beton_cached": True}})
    assert a["config"] == b["config"] == {"batch_size": 8, "backend": {"workers": 2, "order": "random"}}
    assert b["metrics"]["backend"] == {"construct_s": 0.1, "beton_cached": True} and a["schema"] == 2


WRITER = textwrap.dedent("""
    import sys
    from bench.results import append, make_record
    path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    pad = "x" * 20000  # long lines: an unlocked append of this size is not one write
    for i in range(n):
        append(make_record("ceiling", variant=tag, metrics={"i": i}, config={"pad": pad}), path)
""")


def test_two_processes_appending_at_once_lose_no_line(tmp_path):
    f, n = tmp_path / "r.jsonl", 150
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(f), tag, str(n)], cwd=REPO) for tag in ("a", "b")]
    assert [p.wait(timeout=240) for p in procs] == [0, 0]
    recs = load([f])
    assert not recs.skipped and len(recs) == 2 * n
    for tag in ("a", "b"):
        assert sorted(r["metrics"]["i"] for r in recs if r["variant"] == tag) == list(range(n))


HOLDER = textwrap.dedent("""
    import fcntl, sys, time
    with open(sys.argv[1], "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write('{"kind": "ceiling", "hardware": {"id": "hw1"}, "variant": "hold'); f.flush()
        print("locked", flush=True)
        time.sleep(1.0)  # the other process's append must wait here, not write into this line
        f.write('er"}\\n'); f.flush()
        fcntl.flock(f, fcntl.LOCK_UN)
""")


def test_append_waits_for_a_writer_that_holds_the_lock(tmp_path):
    """A writer holding the lock (the migration rewriting the file, a multi-part write) is
    never interleaved with."""
    f = tmp_path / "r.jsonl"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(f)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    append(ceiling_rec(1.0), f)
    assert holder.wait(timeout=60) == 0
    recs = load([f])
    assert not recs.skipped and [r["variant"] for r in recs] == ["holder", "turbo"]
