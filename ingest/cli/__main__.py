"""``python -m ingest.cli``: the same as the ``citypulse`` command."""

from ingest.cli import main

main()
