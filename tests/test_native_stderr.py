"""fd 2 captured while DALI runs (loaders/native_stderr.py): decoder messages kept and counted,
every other line passed on, and a sync token that cannot come back costs one timeout, not one
per batch."""
from __future__ import annotations

import os

import pytest

from loaders.native_stderr import NativeStderr

pytestmark = pytest.mark.timeout(60)


def test_decoder_messages_are_kept_and_other_lines_pass(capfd):
    err = NativeStderr.acquire()
    try:
        os.write(2, b"Corrupt JPEG data: premature end of data segment\nsomething else\n")
        assert err.sync() == 1 and err.kept == ["Corrupt JPEG data: premature end of data segment"]
        err.explained()
    finally:
        NativeStderr.release()
    assert "something else" in capfd.readouterr().err


def test_a_lost_token_is_waited_for_once(tmp_path):
    err = NativeStderr.acquire()
    pipe_end = os.dup(2)
    sink = os.open(tmp_path / "elsewhere", os.O_WRONLY | os.O_CREAT)
    try:
        os.dup2(sink, 2)  # someone else redirects fd 2: the token goes there, not to the reader
        assert err.sync() == 0 and err.lost
        sent = err.sent
        assert err.sync() == 0 and err.sent == sent, "no second token, no second timeout"
    finally:
        os.dup2(pipe_end, 2)
        os.close(pipe_end)
        os.close(sink)
        NativeStderr.release()
