"""fd 2 captured while DALI runs: its decoders (libjpeg, the jpeg parser, nvImageCodec) print
their complaints there, without a file name; loaders/decode_errors.DaliGuard turns them into one
line naming the file. Every other line goes straight on to the real stderr."""
from __future__ import annotations

import faulthandler
import os
import re
import sys
import threading

# What libjpeg(-turbo), DALI's jpeg parser and nvImageCodec print when a decode goes wrong.
DECODER_NOISE = re.compile(r"corrupt jpeg|premature end|bogus|unsupported jpeg|invalid (jpeg|marker|huffman|component|scan|sos)|"
                           r"huffman table|quantization table|jpeg_parser|nvimagecodec|nvjpeg|extraneous bytes|"
                           r"jpeg datastream|not a jpeg|inconsistent progression|sof type", re.IGNORECASE)
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
        self.late_explained = False  # set by the last user that met bad files (DaliGuard.release)
        self.count = self.sent = self.seen = 0
        self.lost = False  # a sync token never came back (see sync)
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
        # A token that does not come back (the reader gone, fd 2 redirected by someone else)
        # would cost every later sync its 5 s timeout, i.e. every batch: after one miss, or once
        # the reader has stopped, sync only counts what arrived.
        if self.lost or not self.thread.is_alive():
            return self.count
        sys.stderr.flush()
        with self.cond:
            self.sent += 1
            target = self.sent
        os.write(2, _TOKEN + b"\n")
        with self.cond:
            if not self.cond.wait_for(lambda: self.seen >= target, timeout=5):
                self.lost = True
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
        for text in [] if self.late_explained else self.kept:  # decoder messages no file explained: not hidden
            os.write(2, text.encode() + b"\n")
        os.close(self.saved)
