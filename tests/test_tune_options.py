"""Tune mode tries each choice of a backend's tunable options (torchvision-gpu's decoder): a
choice that cannot run here is a failed point, and the best one is in the printed flags."""
import pytest

from bench.harness import tune_mode
from loaders import BackendUnavailable


def test_tvgpu_decoder_is_a_tunable_dimension():
    assert tune_mode.tunable_options("torchvision-gpu") == [{}, {"decoder": "torchvision"}, {"decoder": "nvimgcodec"}]
    assert "options" not in tune_mode.candidates(4, 64, "torchvision")
    assert tune_mode.candidates(4, 64, "torchvision-gpu")["options"][2] == {"decoder": "nvimgcodec"}


class _Bar:
    def update(self, *a):
        pass

    def set_postfix_str(self, *a):
        pass


@pytest.mark.parametrize("nvimgcodec_here", [True, False])
def test_search_picks_the_faster_decoder_and_survives_a_missing_one(monkeypatch, nvimgcodec_here):
    def fake(ctx, name, split, workers, prefetch, batch_size, seconds, warmup=2, options=None):
        if (options or {}).get("decoder") == "nvimgcodec" and not nvimgcodec_here:
            raise BackendUnavailable("torchvision-gpu decoder=nvimgcodec: nvImageCodec cannot be imported")
        fast = 2.0 if (options or {}).get("decoder") == "nvimgcodec" else 1.0
        return {"workers": workers, "prefetch": prefetch, "batch_size": batch_size, "options": dict(options or {}),
                "images_per_sec": 100.0 * fast * workers, "steps": 3}

    monkeypatch.setattr(tune_mode, "measure_point", fake)
    start = {"workers": 2, "prefetch": 2, "batch_size": 64, "options": {}}
    search = tune_mode.Search(None, "torchvision-gpu", "train", budget=60, per_point=0.0, start=start)
    search.coordinates(tune_mode.candidates(2, 64, "torchvision-gpu"), _Bar())
    failed = [p for p in search.tried if p.get("error")]
    if nvimgcodec_here:
        assert search.best["options"] == {"decoder": "nvimgcodec"} and not failed
        assert tune_mode.flags(search.best).endswith("--loader-options decoder=nvimgcodec")
    else:
        assert search.best["options"] in ({}, {"decoder": "torchvision"})
        assert len(failed) == 1 and "cannot be imported" in failed[0]["error"]
