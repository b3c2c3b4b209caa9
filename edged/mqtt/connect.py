"""The one set-up every MQTT client of edged's shares: protocol, credentials and TLS.

The daemon's link and the short-lived sessions of the CLI commands connect to the same broker
with the same `BrokerConfig`, so they build their paho clients here and never differ in how a
password or a certificate is applied.
"""

from __future__ import annotations

import ssl
from typing import Any, TypeVar

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edged.config.model import BrokerConfig

_C = TypeVar("_C", bound=paho.Client)


def make_client(cls: type[_C], broker: BrokerConfig, client_id: str, **options: Any) -> _C:
    """A client of class `cls` (paho's, or a subclass) for `broker`, not yet connected.

    `options` go to the class as they are (`manual_ack`, `clean_session`, ...).
    """
    v5 = broker.mqtt_version == "5"
    client = cls(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
        **options,
    )
    if broker.username is not None:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls is not None:
        tls = broker.tls
        client.tls_set(
            ca_certs=str(tls.ca_file) if tls.ca_file else None,
            certfile=str(tls.cert_file) if tls.cert_file else None,
            keyfile=str(tls.key_file) if tls.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
    return client
