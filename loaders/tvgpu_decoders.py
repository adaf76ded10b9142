"""The device JPEG decoders torchvision-gpu can use (`--loader-options decoder=...`).

torchvision  torchvision.io.decode_jpeg(list, device=...): nvJPEG, one batched call (default)
nvimgcodec   nvImageCodec's Decoder.decode(list): batched on the GPU's hardware JPEG engines
             (A100/H100/H200) or CUDA, its own choice per image; on the CPU dry run its
             libjpeg-turbo backend. EXIF orientation ignored, as PIL/ImageFolder ignore it.
Same contract for both: `decode(datas)` takes the JPEGs' bytes (uint8 CPU tensors) and returns
per image a C x H x W uint8 RGB tensor on the device (grayscale expanded), or None where that
image failed, which the loader then decodes on the host and counts. A decoder that cannot run
here raises BackendUnavailable with one line saying why and what to do.
"""
from __future__ import annotations

import threading

import numpy as np
import torch

NVIMGCODEC_INSTALL = ("pip install nvidia-nvimgcodec-cu13 (CUDA 13; -cu12 for CUDA 12), or on the GPU machine "
                      "the DALI parts, which carry it (README-gpu.md)")


class TorchvisionDecoder:
    name = "torchvision"

    def __init__(self, device: torch.device):
        from torchvision.io import ImageReadMode, decode_jpeg

        self._decode, self._rgb, self.device = decode_jpeg, ImageReadMode.RGB, device

    def decode(self, datas: list[torch.Tensor]) -> list[torch.Tensor | None]:
        try:
            return list(self._decode(datas, mode=self._rgb, device=self.device))
        except RuntimeError:  # one bad image fails the batch: retry one by one
            out = []
            for d in datas:
                try:
                    out.append(self._decode(d, mode=self._rgb, device=self.device))
                except RuntimeError:
                    out.append(None)
            return out


def nvimgcodec_reason() -> str | None:
    """None where nvImageCodec imports; else one line."""
    try:
        from nvidia import nvimgcodec  # noqa: F401
    except Exception as e:  # noqa: BLE001 - ImportError, or a library that fails to load
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return f"decoder=nvimgcodec: nvImageCodec cannot be imported ({first}); {NVIMGCODEC_INSTALL}"
    return None


class NvImgCodecDecoder:
    name = "nvimgcodec"

    def __init__(self, device: torch.device):
        why = nvimgcodec_reason()
        if why:
            from . import BackendUnavailable

            raise BackendUnavailable(f"torchvision-gpu {why}")
        from nvidia import nvimgcodec

        self.device, self.cuda = device, device.type == "cuda"
        if self.cuda:
            self._dec = nvimgcodec.Decoder(device_id=device.index or 0)
        else:
            self._dec = nvimgcodec.Decoder(device_id=nvimgcodec.NVIMGCODEC_DEVICE_CPU_ONLY,
                                           backends=[nvimgcodec.Backend(nvimgcodec.BackendKind.CPU_ONLY)])
        self._params = nvimgcodec.DecodeParams(apply_exif_orientation=False, color_spec=nvimgcodec.ColorSpec.SRGB)
        # One decode at a time: concurrent calls on one Decoder (two producers, or a pass and the
        # next one started ahead) break its internal futures ("Broken promise", images lost).
        self._lock = threading.Lock()

    def decode(self, datas: list[torch.Tensor]) -> list[torch.Tensor | None]:
        kw = {"cuda_stream": torch.cuda.current_stream(self.device).cuda_stream} if self.cuda else {}
        with self._lock:
            images = self._dec.decode([d.numpy() for d in datas], params=self._params, **kw)
        out: list = []
        for img in images:
            if img is None:
                out.append(None)
            elif self.cuda:  # HWC on the device, zero-copy (__cuda_array_interface__), ordered on our stream
                out.append(torch.as_tensor(img, device=self.device).permute(2, 0, 1))
            else:
                out.append(torch.from_numpy(np.asarray(img.cpu())).permute(2, 0, 1))
        return out


DECODERS = {"torchvision": TorchvisionDecoder, "nvimgcodec": NvImgCodecDecoder}


def make_decoder(name: str, device: torch.device):
    return DECODERS[name](device)
