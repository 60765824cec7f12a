"""Alerts out: the durable alert store and outbox, the delivery channels, and the service glue.

``processors/alerts`` decides (pure); this package stores and delivers:
``store`` and ``outbox`` (one SQLite file), ``channels`` (MQTT, webhook, email,
one module each), ``dispatch`` (a delivery thread per channel), ``service`` (what
the pipeline calls each cycle) and ``settings`` (the ``[alerts]`` table).
"""
