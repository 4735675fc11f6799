"""Test apps record what their functions saw as JSON lines in ``AMLPIPE_TEST_JOURNAL``."""

import json
import os
import threading

_lock = threading.Lock()


def record(**fields: object) -> None:
    line = json.dumps(fields, default=str)
    with _lock, open(os.environ["AMLPIPE_TEST_JOURNAL"], "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
