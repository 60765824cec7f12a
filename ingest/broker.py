"""An MQTT broker inside the process (amqtt), so ``citypulse demo`` needs nothing installed.

amqtt speaks MQTT 3.1.1 and moves about 1,800 QoS 1 messages/s: right for the
demo and small fleets, not for benchmarks or production (use Mosquitto there).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from typing import Any

log = logging.getLogger(__name__)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedBroker:
    """amqtt on a loopback port, running in its own thread and event loop."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._loop = asyncio.new_event_loop()
        self._broker: Any = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="citypulse-broker", daemon=True)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 15.0) -> None:
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        from amqtt.broker import Broker

        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }

        async def boot() -> None:
            self._broker = Broker(config)
            await self._broker.start()

        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(boot(), self._loop)
        try:
            future.result(timeout_s)
        except Exception as failure:
            raise RuntimeError(
                f"the embedded MQTT broker could not start on 127.0.0.1:{self.port}: {failure}; "
                "pass --mqtt-url to use an existing broker instead"
            ) from failure

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._broker is not None:
            future = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
            try:
                future.result(timeout_s)
            except Exception:  # a broker that will not shut down cleanly is still going away
                log.debug("embedded broker shutdown raised", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout_s)

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
