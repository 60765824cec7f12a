"""The TLS context of citypulse's MQTT clients, built from the endpoint's plain settings.

TLS 1.2 is the oldest version offered; the broker's certificate is always
verified (against ``ca_file``, else the system's CAs) and its host name checked.
A client certificate, when configured, identifies the client to a listener that
requires one. The context is built here, in the service layer; the command line
hands the same context to the simulator, which never imports this package.
"""

from __future__ import annotations

import ssl

from processors.endpoint import MqttEndpoint


def client_context(endpoint: MqttEndpoint) -> ssl.SSLContext | None:
    """The context for ``endpoint`` (None for plain ``mqtt://``); errors name the file to fix."""
    if not endpoint.tls:
        return None
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=endpoint.ca_file)
    except (OSError, ssl.SSLError) as bad:
        raise ValueError(
            f"cannot read the MQTT CA file {endpoint.ca_file} ({bad}); "
            "set CITYPULSE_MQTT_CA_FILE to the PEM file of the CA that signed the broker's certificate"
        ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if endpoint.cert_file:
        try:
            context.load_cert_chain(endpoint.cert_file, endpoint.key_file)
        except (OSError, ssl.SSLError) as bad:
            raise ValueError(
                f"cannot load the MQTT client certificate {endpoint.cert_file} with key "
                f"{endpoint.key_file or '(in the same file)'} ({bad}); "
                "check CITYPULSE_MQTT_CERT_FILE and CITYPULSE_MQTT_KEY_FILE"
            ) from None
    return context
