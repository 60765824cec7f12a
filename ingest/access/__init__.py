"""Broker access: credentials, ACL, broker configuration and a test certificate authority.

``citypulse devices provision`` and ``citypulse devices certs`` are the way in;
who may do what is decided in :mod:`processors.access`.
"""
