"""The running service: MQTT in, the processing pipeline, sinks, dead letters, the CLI.

Everything that touches the network, the disk or the clock lives here; the pure
work it orchestrates lives in :mod:`processors`.
"""
