"""The CLI's log handler follows sys.stderr: a stream swapped and closed after `main` ran is never written."""

import io
import logging
import sys

from vlmbrain.cli import _setup_logging


def test_log_handler_writes_to_the_current_stderr(monkeypatch):
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    _setup_logging(0)
    first.close()                      # e.g. a test's capture, closed when its test ended
    now = io.StringIO()
    monkeypatch.setattr(sys, "stderr", now)
    logging.getLogger("vlmbrain").warning("still heard")
    assert now.getvalue() == "vlmbrain: still heard\n"
