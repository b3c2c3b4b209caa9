"""The one set-up every MQTT client of edged's shares: protocol, credentials and TLS.

The daemon's link and the short-lived sessions of the CLI commands connect to the same broker
with the same `BrokerConfig`, so they build their paho clients here and never differ in how a
password or a certificate is applied.
"""

from __future__ import annotations

from typing import Any, TypeVar

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edged.config.model import BrokerConfig
from edged.mqtt._paho import Client
from edged.mqtt.credentials import Credentials, load_credentials

_C = TypeVar("_C", bound=paho.Client)


def make_client(
    cls: type[_C],
    broker: BrokerConfig,
    client_id: str,
    *,
    credentials: bool = True,
    **options: Any,
) -> _C:
    """A client of class `cls` (paho's, or a subclass) for `broker`, not yet connected.

    With `credentials`, the password and TLS files are read and applied now (CredentialsError
    when they cannot be used); the daemon's link leaves them out and applies them anew before
    each connection attempt (`apply_credentials`). `options` go to the class as they are
    (`manual_ack`, `clean_session`, ...).
    """
    v5 = broker.mqtt_version == "5"
    client = cls(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
        **options,
    )
    if credentials:
        apply_credentials(client, broker, load_credentials(broker))
    return client


def apply_credentials(client: paho.Client, broker: BrokerConfig, creds: Credentials) -> None:
    """Log in with the user name and this password, over TLS with this context, from the next
    connect on. Only edged's own client can take a second TLS context (paho refuses one)."""
    if broker.username is not None:
        client.username_pw_set(broker.username, creds.password)
    if creds.tls is not None:
        if isinstance(client, Client):
            client.use_tls(creds.tls)
        else:
            client.tls_set_context(creds.tls)
