"""Pure processing code: sensor kinds, validation and anomaly detection.

Nothing in this package opens a file, a socket or a clock: callers pass bytes and
arrays in and get arrays back, so every piece can be tested (and benchmarked) in
isolation and reused offline exactly as it runs live.
"""
