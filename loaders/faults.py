"""Backend failures that are not bad input: a DataLoader worker killed, an FFCV or DALI thread
raising. Each ends the pass at once with one line (LoaderFailure), never a hang."""
from __future__ import annotations


class LoaderFailure(RuntimeError):
    """A loader's worker process or thread died: the message is one line, what and what to do."""
