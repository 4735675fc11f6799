"""``python -m amlpipe.cli``: the same as the ``amlpipe`` console script."""

from __future__ import annotations

from amlpipe.cli import main

main()
