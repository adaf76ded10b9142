"""A file that passes the scan but not the decoder, met by a backend that decodes it itself.

`decode_problem(path)`: the project's own strict check (loaders/torchvision_decode.decode_rgb:
libjpeg-turbo through simplejpeg, which fails on libjpeg's warnings too, e.g. "Corrupt JPEG
data: premature end of data segment"; PIL for PNG and CMYK). It decodes one file: used only
on the few files a backend's failure points at, never on a whole split.

DALI (CPU) decodes a JPEG with a corrupt body without raising: libjpeg prints its warnings to
the process's stderr (fd 2, 1-3 lines per file; the GPU decoders print ~29 lines of
`[jpeg_parser]` / `nvImageCodec` noise without a file name) and DALI hands on garbage pixels.
`DaliGuard` therefore captures fd 2 while a DALI pass runs (`NativeStderr`: a pipe read by a
thread; every line that is not a decoder message goes straight on to the real stderr), and
when decoder messages arrived before a batch is handed on, checks that batch's files (and those
of the batches DALI already decodes ahead) with decode_problem: the bad one is one DataError
naming it, or with --skip-bad is quarantined (loaders/datasets/quarantine.py) and its row
dropped from the batch, and the pass goes on. Decoder messages no file explains are passed on
to stderr as they were. A DALI exception (a file gone, a decoder that raises) becomes one line
the same way: the file it points at, else a LoaderFailure with DALI's first line.
"""
from __future__ import annotations

import faulthandler
import os
import re
import sys
import threading

from .datasets import undecodable
from .datasets.quarantine import quarantine, skip_bad
from .faults import LoaderFailure

# What libjpeg(-turbo), DALI's jpeg parser and nvImageCodec print when a decode goes wrong.
DECODER_NOISE = re.compile(r"corrupt jpeg|premature end|bogus|unsupported jpeg|invalid (jpeg|marker|huffman|component|scan|sos)|"
                           r"huffman table|quantization table|jpeg_parser|nvimagecodec|nvjpeg|extraneous bytes|"
                           r"jpeg datastream|not a jpeg|inconsistent progression|sof type", re.IGNORECASE)


def decode_problem(path: str) -> str | None:
    """Why `path` does not decode with the project's strict decoder, or None."""
    from .torchvision_decode import decode_rgb

    try:
        with open(path, "rb") as f:
            data = f.read()
        decode_rgb(data)
    except FileNotFoundError as e:
        return str(undecodable(path, e)).split(": ", 1)[1]
    except (ValueError, OSError) as e:
        return f"cannot decode this image ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
    return None
