"""loaders/batched_resize.py: one batch of crops + antialiased bilinear resizes + flips as two
batched matrix products, against PIL's resize (the torchvision backend's reference) and against
the per-image interpolate loop it replaces: odd sizes, upscaling crops, grayscale, val's center
crop (padding included), mixed sizes in one batch (several size groups)."""
import numpy as np
import pytest
import torch
from PIL import Image

from loaders.batched_resize import Plan, axis_weights, resize_batch, size_groups
from loaders.spec import LoaderSpec
from loaders.torchvision_gpu import plan_for, resize_per_image
from loaders.reference import val_crop

RNG = np.random.default_rng(0)


def _image(h, w, channels=3):
    return (RNG.random((h, w, channels)) * 255).astype(np.uint8)


def _pil_crop_resize(a, p: Plan, res):
    img = Image.fromarray(a if a.shape[2] == 3 else a[:, :, 0])
    out = np.asarray(img.crop((p.left, p.top, p.left + p.w, p.top + p.h)).resize((res, res), Image.BILINEAR)).astype(float)
    out = out if out.ndim == 3 else out[:, :, None]
    return out[:, ::-1] if p.flip else out


def _chw(a):
    return torch.from_numpy(a).permute(2, 0, 1)


# (image h, w, crop top, left, h, w, res, flip): downscale, upscale (crop smaller than res),
# one-pixel-wide and odd sizes, the whole image
CASES = [(37, 53, 3, 5, 20, 31, 24, False), (100, 80, 10, 7, 60, 50, 32, True), (50, 50, 0, 0, 50, 50, 224, False),
         (300, 211, 0, 0, 300, 211, 17, True), (9, 13, 1, 2, 5, 7, 32, True), (64, 3, 0, 0, 64, 3, 16, False),
         (1, 1, 0, 0, 1, 1, 5, False)]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("channels", [3, 1])
def test_one_crop_matches_pil(case, channels):
    h, w, top, left, ch, cw, res, flip = case
    a = _image(h, w, channels)
    p = Plan(top, left, ch, cw, res, res, flip=flip)
    got = resize_batch([_chw(a)], [p], res)[0].permute(1, 2, 0).numpy()
    diff = np.abs(got.round() - _pil_crop_resize(a, p, res))
    assert diff.max() <= 1 and diff.mean() < 0.3  # PIL rounds between its two passes; we do not


def test_a_mixed_batch_is_each_image_alone():
    res = 24
    arrays = [_image(*c[:2]) for c in CASES]
    plans = [Plan(*c[2:6], res, res, flip=c[7]) for c in CASES]
    assert len(size_groups([(p.h, p.w) for p in plans])) > 1, "the batch spans several size groups"
    batch = resize_batch([_chw(a) for a in arrays], plans, res)
    for a, p, got in zip(arrays, plans, batch):
        alone = resize_batch([_chw(a)], [p], res)[0]
        assert torch.allclose(got, alone, atol=1e-3)


@pytest.mark.parametrize("hw", [(256, 341), (333, 256), (97, 61), (1000, 17)])
def test_val_plan_is_resize_and_center_crop(hw):
    spec, res = LoaderSpec(res=64, val_res=64), 64
    a = _image(*hw)
    p = plan_for("val", spec, *hw, res, epoch=0, index=0)
    got = resize_batch([_chw(a)], [p], res)[0].permute(1, 2, 0).numpy().round()
    ref = val_crop(Image.fromarray(a), res, spec.resize_side("val")).astype(float)
    assert np.abs(got - ref).mean() < 0.5 and np.abs(got - ref).max() <= 2


def test_center_crop_wider_than_the_resize_pads_with_zeros():
    # val_res above the resize side: torchvision's CenterCrop pads; rows outside are zero weights
    w = axis_weights(torch.tensor([10]), torch.tensor([10]), torch.tensor([-3]), 16, 10)
    assert torch.all(w[0, :3] == 0) and torch.all(w[0, 13:] == 0) and torch.allclose(w[0, 3:13].sum(-1), torch.ones(10))


def test_weights_fold_the_flip_and_zero_the_padding():
    w = axis_weights(torch.tensor([30]), torch.tensor([8]), torch.tensor([0]), 8, 40)
    wf = axis_weights(torch.tensor([30]), torch.tensor([8]), torch.tensor([0]), 8, 40, flip=torch.tensor([True]))
    assert torch.equal(wf[0], w[0].flip(0)) and torch.all(w[0, :, 30:] == 0)
    assert torch.allclose(w.sum(-1), torch.ones(1, 8))


@pytest.mark.parametrize("split", ["train", "val"])
def test_batched_equals_the_per_image_loop(split):
    spec, res = LoaderSpec(res=32, val_res=32, seed=3), 32
    sizes = [(37, 53), (100, 80), (20, 20), (300, 211), (9, 13), (64, 3)]
    images = [_chw(_image(*s)) for s in sizes]
    plans = [plan_for(split, spec, *s, res, epoch=1, index=i) for i, s in enumerate(sizes)]
    a = resize_batch(images, plans, res)
    b = resize_per_image(images, plans, res, torch.empty_like(a))
    assert (a - b).abs().mean() < 0.05 and (a.round() - b.round()).abs().max() <= 1


def test_size_groups_bound_the_padding():
    sizes = [(500, 375), (375, 500), (480, 640), (4000, 3000), (32, 32)]
    groups = size_groups(sizes)
    assert sorted(j for g in groups for j in g) == list(range(len(sizes)))
    for g in groups:
        bh, bw = max(sizes[j][0] for j in g), max(sizes[j][1] for j in g)
        assert all(bh * bw <= 2 * sizes[j][0] * sizes[j][1] for j in g)
    assert [3] in groups and [4] in groups  # the huge and the tiny image each alone
