"""A file that passes the scan but not the decoder, met by a backend that decodes it itself.

`decode_problem(path)`: the project's own strict check (loaders/torchvision_decode.decode_rgb:
libjpeg-turbo through simplejpeg, which fails on libjpeg's warnings too, e.g. "Corrupt JPEG
data: premature end of data segment"; PIL for PNG and CMYK). It decodes one file: used only
on the few files a backend's failure points at, never on a whole split.

DALI (CPU) decodes a JPEG with a corrupt body without raising: libjpeg prints its warnings to
the process's stderr (fd 2, 1-3 lines per file; the GPU decoders print ~29 lines of
`[jpeg_parser]` / `nvImageCodec` noise without a file name) and DALI hands on garbage pixels.
`DaliGuard` therefore captures fd 2 while a DALI pass runs (loaders/native_stderr.py `NativeStderr`: a pipe read by a
thread; every line that is not a decoder message goes straight on to the real stderr), and
when decoder messages arrived before a batch is handed on, checks that batch's files (and those
of the batches DALI already decodes ahead, the next pass's first ones included: fd 2 stays
captured between passes while DALI decodes them, loaders/dali_ahead.py) with decode_problem: the bad one is one DataError
naming it, or with --skip-bad is quarantined (loaders/datasets/quarantine.py) and its row
dropped from the batch, and the pass goes on. Decoder messages no file explains are passed on
to stderr as they were. A DALI exception (a file gone, a decoder that raises) becomes one line
the same way: the file it points at, else a LoaderFailure with DALI's first line.
"""
from __future__ import annotations

from .datasets import undecodable
from .datasets.quarantine import marked_index, quarantine_counted, skip_bad
from .faults import LoaderFailure
from .native_stderr import NativeStderr


def decode_problem(path: str) -> str | None:
    """Why `path` does not decode with the project's strict decoder, or None."""
    err = decode_error(path)
    return None if err is None else why(err, path)


def keep_good(loader, images, labels):
    """(images, labels) without the rows marked bad by a worker (labels < 0, CPU), each of
    their files quarantined and counted in loader.stats["quarantined_at_decode"]."""
    bad = labels < 0
    if not bool(bad.any()):
        return images, labels
    for label in labels[bad].tolist():
        path = loader.samples[marked_index(label)][0]
        quarantine_counted(loader, path, decode_problem(path) or "cannot decode this image")
    keep = ~bad
    return images[keep.to(images.device)], labels[keep]


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


class DaliGuard:
    """One DALI pass: fd 2 captured (NativeStderr), and before a batch is handed on, the decoder
    messages so far explained by the files of the batches in flight (this one, the ones DALI
    decodes ahead, the next pass's first ones included); see the module docstring. What is
    learnt about a batch is kept on its loaders/dali_source.Item."""

    def __init__(self, loader):
        self.loader, self.stream = loader, loader._stream
        self.skip = skip_bad(loader.dataset)
        # libjpeg may print a bad file's last message after DALI handed its batch on (or after
        # the pass ended): once the loader met a bad file, messages no other file explains are its
        self.met_bad = bool(getattr(loader, "_dali_met_bad", False))
        self.noise = 0

    def __enter__(self):
        self.err = NativeStderr.acquire()
        if getattr(self.loader, "_stderr_held", False):  # held over from the last pass (batches decoded on)
            self.loader._stderr_held = False
            NativeStderr.release()
        self.noise = self.err.sync() - len(self.err.kept)  # messages no file explained yet may be this pass's
        return self

    def __exit__(self, *exc):
        feed = self.stream.feed
        if feed is not None and feed.inflight:  # DALI decodes on (the next pass's batches): keep listening
            self.loader._stderr_held = True
        else:
            DaliGuard._release(self.loader)

    @staticmethod
    def _release(loader) -> None:
        """Give fd 2 back; a loader that met bad files owns the decoder messages that arrive
        while the capture ends (libjpeg's late lines: the module docstring), when it is the last user."""
        cur = NativeStderr._current
        if cur is not None and NativeStderr._users == 1 and getattr(loader, "_dali_met_bad", False):
            cur.late_explained = True
        NativeStderr.release()

    @staticmethod
    def release_held(loader) -> None:
        """Close with fd 2 still held for batches in flight (never to be read): let DALI finish
        them, drop the messages their files explain, then give fd 2 back."""
        if not getattr(loader, "_stderr_held", False):
            return
        loader._stderr_held = False
        try:
            guard = DaliGuard(loader)
            guard.err = NativeStderr._current
            dropped = loader._stream.skip_inflight()
            if loader._stream.pipe is not None:
                loader._stream.pipe._shutdown()  # waits for DALI's threads: their last messages are in the pipe now
            guard.explain(dropped)
        except RuntimeError:
            pass  # a pipeline that failed ahead: nothing of it is read
        finally:
            DaliGuard._release(loader)

    def discard(self, stream) -> None:
        """Read and drop the batches in flight that this pass will not use (a wrong guess),
        letting their files explain their decoder messages."""
        self.explain(stream.skip_inflight())

    def explain(self, items) -> None:
        if self.err is not None and self.err.sync() > self.noise:
            self._check(items)

    def _check(self, items) -> bool:
        """Check the files of the items not checked yet; note their bad rows and errors (settled
        when an item is read). True if a bad file was found."""
        found = False
        for item in items:
            if item.checked:
                continue
            item.checked = True
            for row, path in enumerate(item.paths):
                err = decode_error(path)
                if err is not None:
                    found = True
                    item.bad.append(row)
                    item.errors.append((path, err))
        self.met_bad = self.met_bad or found  # see __init__
        if self.met_bad:
            self.loader._dali_met_bad = True
            self.noise = max(self.noise, self.err.sync())  # decode_error's own libjpeg messages too
            self.err.explained()
        return found

    def _settle(self, found) -> None:
        """Stop at the first bad file, or (--skip-bad) quarantine them all and go on."""
        if found and not self.skip:
            raise found[0][1] from None
        for path, err in found:
            quarantine_counted(self.loader, path, why(err, path))

    def outputs(self):
        """(the head Item, pipe.share_outputs()); a DALI exception becomes one line."""
        stream = self.stream
        item = stream.head()
        try:
            return item, stream.pipe.share_outputs()
        except RuntimeError as e:
            items = list(stream.feed.inflight)
            stream.drop()  # DALI cannot go on after raising
            self._check(items)
            found = [e for it in items for e in it.errors]
            if found:  # stop, the file named (--skip-bad: remembered for the next start)
                self._settle(found[:1])
                raise found[0][1] from None
            first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
            raise LoaderFailure(f"dali: its pipeline failed at batch {item.batch} ({first.strip()[:300]})") from None

    def keep(self, item, x, y):
        """(x, y) of `item`'s batch (just released), without the rows of files that did not
        decode (--skip-bad) or were quarantined in an earlier pass."""
        n = self.err.sync()
        if n > self.noise:
            self.noise = n
            self._check([item, *self.stream.feed.inflight])
        self._settle(item.errors)
        rows = set(item.bad)
        known = {b["path"] for b in self.loader.dataset.quarantined}
        if known:  # found in an earlier pass: left out by name, whether or not its messages arrived in time
            rows.update(r for r, path in enumerate(item.paths[:x.shape[0]]) if path in known)
        if not rows:
            return x, y
        import torch

        mask = torch.ones(x.shape[0], dtype=torch.bool)
        mask[sorted(rows)] = False
        return x[mask.to(x.device)], y[mask.to(y.device)]
