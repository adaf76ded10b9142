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
of the batches DALI already decodes ahead, the next pass's pipeline's first ones included: fd 2
stays captured between passes while it runs, loaders/dali_ahead.py) with decode_problem: the bad one is one DataError
naming it, or with --skip-bad is quarantined (loaders/datasets/quarantine.py) and its row
dropped from the batch, and the pass goes on. Decoder messages no file explains are passed on
to stderr as they were. A DALI exception (a file gone, a decoder that raises) becomes one line
the same way: the file it points at, else a LoaderFailure with DALI's first line.
"""
from __future__ import annotations

from .datasets import undecodable
from .datasets.quarantine import quarantine_counted, skip_bad
from .faults import LoaderFailure
from .native_stderr import NativeStderr


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


class _Checked:
    """What DaliGuard learnt about one pass's batches (kept on its Run: the pipeline started
    ahead decodes the next pass's first batches while this pass's guard listens)."""

    def __init__(self):
        self.checked: set[int] = set()
        self.bad: dict[int, list[int]] = {}  # batch -> rows to drop
        self.errors: dict[int, list] = {}  # batch -> [(path, DataError)] met ahead, settled at that batch


class DaliGuard:
    """One DALI pass: fd 2 captured (NativeStderr), and before batch j is handed on, the
    decoder messages so far explained by the files of batches j.. (decoded, or being decoded
    ahead, the next pass's first ones included); see the module docstring. `run`: the pass's
    loaders/dali_ahead.Run (None: the files are the epoch's order from batch 0)."""

    def __init__(self, loader, run=None):
        self.loader = loader
        self.epoch, self._order = loader.epoch, None  # run None: the epoch's order, computed only when a file must be checked
        self.bs = loader.spec.batch_size
        self.skip = skip_bad(loader.dataset)
        # libjpeg may print a bad file's last message after DALI handed its batch on (or after
        # the pass ended): once the loader met a bad file, messages no other file explains are its
        self.met_bad = bool(getattr(loader, "_dali_met_bad", False))
        self.attach(run)
        self.noise = 0
        self.pipe, self.next, self.scheduled = None, 0, 0  # what DALI is still decoding for this pass

    def attach(self, run):
        """The pass's Run, once taken (its first runs are scheduled inside the guard)."""
        self.run, self.state = run, self._state(run)
        self.met_bad = self.met_bad or bool(self.state.bad or self.state.errors)  # met while the last pass read
        return run

    @staticmethod
    def _state(run) -> _Checked:
        if run is None:
            return _Checked()
        if getattr(run, "checked", None) is None:
            run.checked = _Checked()
        return run.checked

    def __enter__(self):
        self.err = NativeStderr.acquire()
        if getattr(self.loader, "_stderr_held", False):  # held over from the last pass (its next pipeline ran)
            self.loader._stderr_held = False
            NativeStderr.release()
        self.noise = self.err.sync() - len(self.err.kept)  # messages no file explained yet may be this pass's
        return self

    def __exit__(self, *exc):
        try:
            self._drain()
        finally:
            nxt = getattr(self.run, "next", None)
            if exc[0] is None and nxt is not None:  # the next pass's pipeline decodes on: keep listening
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
    def release_held(loader, nxt) -> None:
        """Close with fd 2 still held for the next pass's pipeline (`nxt`, never read): let it
        finish what it decodes, and drop the messages its files explain, then give fd 2 back."""
        if not getattr(loader, "_stderr_held", False):
            return
        loader._stderr_held = False
        try:
            if nxt is not None:
                guard = DaliGuard(loader, nxt)
                guard.err, guard.noise = NativeStderr._current, 0
                for _ in range(nxt.scheduled):
                    nxt.pipe.share_outputs()
                    nxt.pipe.release_outputs()
                nxt.pipe._shutdown()  # waits for DALI's threads: their last messages are in the pipe now
                found = guard._check_run(nxt, range(nxt.scheduled))
                if guard.err is not None and guard.err.sync() > 0 and (found or guard.met_bad):  # sync: the check's own messages too
                    guard.err.explained()
        except RuntimeError:
            pass  # a pipeline that failed ahead: nothing of it is read
        finally:
            DaliGuard._release(loader)

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

    def _paths(self, run, b: int) -> list[str]:
        if run is None:
            if self._order is None:
                self._order = self.loader.order(self.epoch)
            return [self.loader.samples[i][0] for i in self._order[b * self.bs:(b + 1) * self.bs]]
        return run.pipe.files.paths(b) if b < run.total else []

    def _check_run(self, run, batches) -> list:
        state, found = self._state(run), []
        for b in batches:
            if b in state.checked:
                continue
            state.checked.add(b)
            for row, path in enumerate(self._paths(run, b)):
                err = decode_error(path)
                if err is not None:
                    found.append((b, path, err))
                    state.bad.setdefault(b, []).append(row)
        return found

    def _check(self, batches) -> list:
        """DataErrors for the bad files of these batches, in order; their rows noted. The next
        pass's in-flight batches are checked too; what they hold is settled when it is read."""
        found = [(path, err) for _, path, err in self._check_run(self.run, batches)]
        nxt = getattr(self.run, "next", None)
        ahead = self._check_run(nxt, range(nxt.scheduled)) if nxt is not None else []
        for b, path, err in ahead:
            self._state(nxt).errors.setdefault(b, []).append((path, err))
        self.met_bad = self.met_bad or bool(found) or bool(ahead)  # see __init__
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

    def outputs(self, pipe, j: int, scheduled: int):
        """pipe.share_outputs() for batch j; a DALI exception becomes one line."""
        self.pipe, self.next, self.scheduled = pipe, j, scheduled
        try:
            out = pipe.share_outputs()
            self.next = j + 1
            return out
        except RuntimeError as e:
            self.pipe = None  # nothing more to drain
            found = self.state.errors.pop(j, []) + self._check(range(j, scheduled))
            if found:  # DALI cannot go on after raising: stop, the file named (--skip-bad: remembered for the next start)
                self._settle(found[:1])
                raise found[0][1] from None
            first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
            raise LoaderFailure(f"dali: its pipeline failed at batch {j} ({first.strip()[:300]})") from None

    def keep(self, j: int, scheduled: int, x, y):
        """(x, y) of batch j, without the rows of files that did not decode (--skip-bad)."""
        self.scheduled = scheduled
        self._settle(self.state.errors.pop(j, []))  # met while the last pass read
        n = self.err.sync()
        if n > self.noise:
            self.noise = n
            self._settle(self._check(range(j, scheduled)))
        rows = set(self.state.bad.pop(j, ()))
        known = {b["path"] for b in self.loader.dataset.quarantined}
        if known:  # found in an earlier pass: left out by name, whether or not its messages arrived in time
            rows.update(r for r, path in enumerate(self._paths(self.run, j)[:x.shape[0]]) if path in known)
        if not rows:
            return x, y
        import torch

        mask = torch.ones(x.shape[0], dtype=torch.bool)
        mask[sorted(rows)] = False
        return x[mask.to(x.device)], y[mask.to(y.device)]
