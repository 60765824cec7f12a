"""The sub-commands of ``citypulse``, one module each; ``ingest/cli.py`` registers them."""
