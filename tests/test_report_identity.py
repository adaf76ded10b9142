"""What makes two records the same configuration, and what makes one a variant."""
from __future__ import annotations

from bench.report import identity as I
from tests.fixtures import handmade as H


def loader_rec(**config):
    return H.rec("loader", H.CPU, loader="torchvision", variant="train", config=config, backend=H.tv_backend())


def test_the_invocation_and_where_output_went_do_not_split_a_configuration():
    a = loader_rec(loader="all", split="both", out="/tmp/a.jsonl", progress=True)
    b = loader_rec(loader="torchvision,dali", split="train", out=None, progress=False, json=True)
    assert I.config_key(a) == I.config_key(b)
    c = loader_rec(batch_size=256)
    assert I.config_key(a) != I.config_key(c) and I.differs(I.settings(a), I.settings(c)) == ["batch_size: 64 → 256"]


def test_where_checkpoints_went_does_not_split_a_configuration_but_the_starting_weights_do():
    a = loader_rec(checkpoint_dir="/tmp/a", save_checkpoint="/tmp/a/final.pt")
    b = loader_rec(checkpoint=dict(checkpoint_dir="/tmp/b", save_checkpoint=None))  # nested, as the sections write it
    assert I.config_key(a) == I.config_key(b) == I.config_key(loader_rec())
    assert I.config_key(loader_rec(init="/tmp/a/final.pt")) != I.config_key(a)


def test_options_are_what_the_backend_read_plus_flags_off_their_default():
    shared = "pool=processes,producers=2"  # one string for a sweep over two backends
    tv = loader_rec(loader_options=shared, compile=True)
    gpu = H.rec("loader", H.GPU, loader="torchvision-gpu", variant="train", config={"loader_options": shared})
    assert I.options(tv) == {"compile": True, "pool": "processes"} and I.options(gpu) == {"producers": 2}
    assert I.options(loader_rec()) == {} and I.show_options(I.options(tv)) == "compile, pool=processes"


def test_nested_config_is_read_the_same_way():
    flat = loader_rec(loader_options="pool=processes", compile=True)
    nested = dict(flat, config={"run": {"mode": "loader", "loader": "all", "split": "train", "out": "x", "progress": True},
                                "data": {"batch_size": 64, "res": 224}, "model": {"compile": True},
                                "loader_options": {"pool": "processes"}, "backend": H.tv_backend()})
    assert I.options(nested) == I.options(flat) == {"compile": True, "pool": "processes"}
    s = I.settings(nested)
    assert s == {"backend.backend": "torchvision", "backend.pool": "threads", "backend.prefetch": 2, "backend.workers": 2,
                 "data.batch_size": 64, "data.res": 224, "dataset.fingerprint": "fp-embedded", "model.compile": True}
    assert I.get(s, "res") == 224 and I.get(s, "workers") is None  # backend.workers is the backend's, not the run's
    assert I.portable(s) == {k: v for k, v in s.items() if not k.startswith("backend.")}
