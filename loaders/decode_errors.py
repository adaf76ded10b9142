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
from .datasets.quarantine import quarantine_counted, skip_bad
from .faults import LoaderFailure

# What libjpeg(-turbo), DALI's jpeg parser and nvImageCodec print when a decode goes wrong.
DECODER_NOISE = re.compile(r"corrupt jpeg|premature end|bogus|unsupported jpeg|invalid (jpeg|marker|huffman|component|scan|sos)|"
                           r"huffman table|quantization table|jpeg_parser|nvimagecodec|nvjpeg|extraneous bytes|"
                           r"jpeg datastream|not a jpeg|inconsistent progression|sof type", re.IGNORECASE)


def decode_problem(path: str) -> str | None:
    """Why `path` does not decode with the project's strict decoder, or None."""
    err = decode_error(path)
    return None if err is None else why(err, path)


def decode_error(path: str):
    """The one-line DataError for `path` if the project's strict decoder rejects it, else None."""
    from .torchvision_decode import decode_rgb

    try:
        with open(path, "rb") as f:
            decode_rgb(f.read())
    except (ValueError, OSError) as e:
        return undecodable(path, e)
    return None


def why(error, path: str) -> str:
    """The cause in an undecodable() message, without the path (what the quarantine lists)."""
    return str(error)[len(path) + 2:]


# -- fd 2 while DALI runs ----------------------------------------------------------------------
_TOKEN = b"\x00loaderbench-stderr-sync\x00"
_STOP = b"\x00loaderbench-stderr-stop\x00"  # the reader's last line (a forked child may hold the pipe open)


class NativeStderr:
    """fd 2 redirected into a pipe for as long as one is acquired (refcounted: the process has
    one fd 2). A reader thread passes every line on to the real stderr at once, except decoder
    messages, which it keeps; sync() returns how many it kept, counting everything written
    before the call (a marker line goes through the same pipe)."""

    _lock = threading.Lock()
    _users = 0
    _current: "NativeStderr | None" = None

    @classmethod
    def acquire(cls) -> "NativeStderr":
        with cls._lock:
            if cls._current is None:
                cls._current = cls()
            cls._users += 1
            return cls._current

    @classmethod
    def release(cls) -> None:
        with cls._lock:
            cls._users -= 1
            if cls._users == 0 and cls._current is not None:
                cls._current._stop()
                cls._current = None

    def __init__(self):
        self.kept: list[str] = []
        self.count = self.sent = self.seen = 0
        self.cond = threading.Condition()
        sys.stderr.flush()
        self.saved = os.dup(2)
        r, w = os.pipe()
        os.dup2(w, 2)
        os.close(w)
        self.r = r
        self.fault = faulthandler.is_enabled()
        if self.fault:  # a crash's traceback goes to the terminal, not into the pipe
            faulthandler.enable(file=self.saved, all_threads=True)
        self.thread = threading.Thread(target=self._read, name="native-stderr", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        buf = b""
        while chunk := os.read(self.r, 65536):
            *lines, buf = (buf + chunk).split(b"\n")
            for line in lines:
                if line == _STOP:
                    return
                self._line(line)
        if buf:
            self._line(buf)

    def _line(self, raw: bytes) -> None:
        with self.cond:
            if raw == _TOKEN:
                self.seen += 1
                self.cond.notify_all()
                return
            text = raw.decode(errors="replace")
            if DECODER_NOISE.search(text):
                self.kept.append(text)
                self.count += 1
                return
        os.write(self.saved, raw + b"\n")

    def sync(self) -> int:
        sys.stderr.flush()
        with self.cond:
            self.sent += 1
            target = self.sent
        os.write(2, _TOKEN + b"\n")
        with self.cond:
            self.cond.wait_for(lambda: self.seen >= target, timeout=5)
            return self.count

    def explained(self) -> None:
        """The kept messages are accounted for by a file named in one line: drop them."""
        with self.cond:
            self.kept.clear()

    def _stop(self) -> None:
        sys.stderr.flush()
        os.write(2, _STOP + b"\n")
        os.dup2(self.saved, 2)
        self.thread.join(timeout=5)
        os.close(self.r)
        if self.fault:
            faulthandler.enable(file=sys.stderr, all_threads=True)
        for text in self.kept:  # decoder messages no file explained: not hidden
            os.write(2, text.encode() + b"\n")
        os.close(self.saved)


class DaliGuard:
    """One DALI pass: fd 2 captured (NativeStderr), and before batch j is handed on, the
    decoder messages so far explained by the files of batches j.. (decoded, or being decoded
    ahead); see the module docstring."""

    def __init__(self, loader):
        self.loader = loader
        self.epoch, self._order = loader.epoch, None  # this pass's order: computed only when a file must be checked
        self.bs = loader.spec.batch_size
        self.skip = skip_bad(loader.dataset)
        self.checked: set[int] = set()
        self.bad: dict[int, list[int]] = {}  # batch -> rows to drop
        self.noise = 0
        self.met_bad = False
        self.pipe, self.next, self.scheduled = None, 0, 0  # what DALI is still decoding for this pass

    def __enter__(self):
        self.err = NativeStderr.acquire()
        return self

    def __exit__(self, *exc):
        try:
            self._drain()
        finally:
            NativeStderr.release()

    def _drain(self) -> None:
        """A pass abandoned mid-way: let DALI finish the batches it decodes ahead (their
        messages would reach the terminal after fd 2 is back), and let their files explain them."""
        if self.pipe is None:
            return
        for _ in range(self.next, self.scheduled):
            try:
                self.pipe.share_outputs()
                self.pipe.release_outputs()
            except RuntimeError:
                break
        if self.err.sync() > self.noise:
            self._check(range(self.next, self.scheduled))

    def _check(self, batches) -> list:
        """DataErrors for the bad files of these batches, in order; their rows noted."""
        found = []
        for b in batches:
            if b in self.checked:
                continue
            self.checked.add(b)
            if self._order is None:
                self._order = self.loader.order(self.epoch)
            for row, i in enumerate(self._order[b * self.bs:(b + 1) * self.bs]):
                path = self.loader.samples[i][0]
                err = decode_error(path)
                if err is not None:
                    found.append((path, err))
                    self.bad.setdefault(b, []).append(row)
        # libjpeg may print a bad file's last message after DALI handed its batch on: once this
        # pass met a bad file, messages that no other file explains are its own.
        self.met_bad = self.met_bad or bool(found)
        if self.met_bad:
            self.err.explained()
        return found

    def _settle(self, found) -> None:
        """Stop at the first bad file, or (--skip-bad) quarantine them all and go on."""
        if found and not self.skip:
            raise found[0][1] from None
        for path, err in found:
            quarantine_counted(self.loader, path, why(err, path))

    def outputs(self, pipe, j: int, scheduled: int):
        """pipe.share_outputs() for batch j; a DALI exception becomes one line."""
        self.pipe, self.next, self.scheduled = pipe, j, scheduled
        try:
            out = pipe.share_outputs()
            self.next = j + 1
            return out
        except RuntimeError as e:
            self.pipe = None  # nothing more to drain
            found = self._check(range(j, scheduled))
            if found:  # DALI cannot go on after raising: stop, the file named (--skip-bad: remembered for the next start)
                self._settle(found[:1])
                raise found[0][1] from None
            first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
            raise LoaderFailure(f"dali: its pipeline failed at batch {j} ({first.strip()[:300]})") from None

    def keep(self, j: int, scheduled: int, x, y):
        """(x, y) of batch j, without the rows of files that did not decode (--skip-bad)."""
        self.scheduled = scheduled
        n = self.err.sync()
        if n > self.noise:
            self.noise = n
            self._settle(self._check(range(j, scheduled)))
        rows = self.bad.pop(j, None)
        if not rows:
            return x, y
        import torch

        mask = torch.ones(x.shape[0], dtype=torch.bool)
        mask[rows] = False
        return x[mask.to(x.device)], y[mask.to(y.device)]
