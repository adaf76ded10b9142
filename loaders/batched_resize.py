"""A whole batch's crop + antialiased bilinear resize + flip as two batched matrix products.

PIL's resize (and torch's antialias=True, which follows it) is separable: each output row is a
weighted sum of input rows, each output column of input columns, with PIL's triangle-filter
weights (support widened by the downscale factor, each output pixel's weights normalised to
1, clipped to the input's edges). So for a sample whose crop window is in_h x in_w,

    out = Wy @ crop @ Wx^T        Wy: res x in_h,  Wx: res x in_w

and the crop window, the output window (val's center crop) and the flip fold into the
matrices: rows of Wy/Wx are the output pixels kept (val: the center crop of the full resize;
train: all of the res x res resize), a flipped sample's Wx has its rows reversed, and columns
past the crop's size are zero, so the crops can sit zero-padded in one tensor. The batch then
costs, per group of similar-sized images, one padded copy per image (the remaining per-image
work, with the decode list), one float conversion and two `matmul`s (bmm), whatever the batch
size; the weights are built on the device in a few broadcast ops from the per-sample sizes.

Images are grouped by size (`size_groups`) so that one large image does not make the whole
batch's padded tensor large; ImageNet-like batches make one or two groups.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Plan:
    """One sample's geometry: the crop window of the decoded image, the size of the full resize
    of that window, the output window kept (start row/col of res x res) and the flip."""
    top: int
    left: int
    h: int
    w: int
    out_h: int
    out_w: int
    row0: int = 0
    col0: int = 0
    flip: bool = False


def axis_weights(in_size: torch.Tensor, out_size: torch.Tensor, start: torch.Tensor, res: int,
                 pad: int, flip: torch.Tensor | None = None) -> torch.Tensor:
    """(N, res, pad) float32 weights: row i of sample n holds PIL's bilinear (antialiased)
    weights for output pixel start[n] + i of a resize in_size[n] -> out_size[n], over input
    pixels 0 .. pad-1 (zero at and past in_size[n]); rows outside the output are zero (a
    center crop larger than the resize pads with zeros, as torchvision's CenterCrop). With
    flip[n], the rows come in reverse order. Sizes are int tensors on the target device."""
    dev = in_size.device
    insz, outsz = in_size.double()[:, None, None], out_size.double()[:, None, None]
    i = torch.arange(res, device=dev, dtype=torch.float64)[None, :, None]
    if flip is not None:
        i = torch.where(flip[:, None, None], res - 1 - i, i)
    o = start.double()[:, None, None] + i  # the output pixel each row computes
    scale = insz / outsz
    fs = scale.clamp(min=1.0)  # the filter widens when downscaling (antialiasing)
    center = (o + 0.5) * scale
    x = torch.arange(pad, device=dev, dtype=torch.float64)[None, None, :]
    w = (1.0 - ((x + 0.5 - center) / fs).abs()).clamp(min=0.0)
    w = w * (x < insz)  # clipped to the input (PIL's xmin/xmax), padding weighs nothing
    total = w.sum(-1, keepdim=True)
    w = torch.where(total > 0, w / total.clamp(min=1e-12), w)
    w = w * ((o >= 0) & (o < outsz))  # output pixels outside the resize: zeros
    return w.float()


def size_groups(sizes: list[tuple[int, int]], waste: float = 2.0) -> list[list[int]]:
    """Indices grouped so that each group's padded area (max h x max w) is at most `waste`
    times any member's own area: greedy over the sizes from largest to smallest area."""
    order = sorted(range(len(sizes)), key=lambda j: -sizes[j][0] * sizes[j][1])
    groups: list[list[int]] = []
    box = None
    for j in order:
        h, w = sizes[j]
        if box is not None:
            bh, bw = max(box[0], h), max(box[1], w)
            if bh * bw <= waste * h * w:
                groups[-1].append(j)
                box = (bh, bw)
                continue
        groups.append([j])
        box = (h, w)
    return groups


def _padded(crops: list[torch.Tensor], device) -> torch.Tensor:
    """The crops (C x h x w uint8 views) zero-padded into one float (G, C, H, W) tensor."""
    c = crops[0].shape[0]
    hp, wp = max(t.shape[-2] for t in crops), max(t.shape[-1] for t in crops)
    buf = torch.zeros((len(crops), c, hp, wp), dtype=crops[0].dtype, device=device)
    for k, t in enumerate(crops):  # one copy per image: the per-image part that remains
        buf[k, :, : t.shape[-2], : t.shape[-1]] = t
    return buf.float()


def resize_batch(images: list[torch.Tensor], plans: list[Plan], res: int, out: torch.Tensor | None = None,
                 waste: float = 2.0) -> torch.Tensor:
    """Float (N, C, res, res) batch (not yet rounded): each image's plan applied, in a few
    batched ops per size group. `out` (e.g. channels_last) receives it if given."""
    device = images[0].device
    if out is None:
        out = torch.empty((len(images), images[0].shape[0], res, res), dtype=torch.float32, device=device)
    for group in size_groups([(p.h, p.w) for p in plans], waste):
        ps = [plans[j] for j in group]
        x = _padded([images[j][:, p.top : p.top + p.h, p.left : p.left + p.w] for j, p in zip(group, ps)], device)
        geo = torch.tensor([[p.h, p.w, p.out_h, p.out_w, p.row0, p.col0, p.flip] for p in ps], device=device)
        wy = axis_weights(geo[:, 0], geo[:, 2], geo[:, 4], res, x.shape[-2])
        wx = axis_weights(geo[:, 1], geo[:, 3], geo[:, 5], res, x.shape[-1], flip=geo[:, 6].bool())
        y = torch.matmul(wy[:, None], torch.matmul(x, wx.transpose(1, 2)[:, None]))  # (G, C, res, res)
        out[torch.tensor(group, device=device)] = y
    return out
