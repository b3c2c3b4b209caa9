"""The ceiling: paho receiving and republishing every message, with no filter at all.

Run by benchmarks/throughput.py as its own process, so it is measured the same way as edged.
"""

from __future__ import annotations

import sys

import paho.mqtt.client as paho


def main() -> None:
    host, port, pattern, out_topic = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    v5 = sys.argv[5] == "5" if len(sys.argv) > 5 else True
    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2,
        client_id="raw-republish",
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
    )

    def on_message(c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        c.publish(out_topic, msg.payload, 0)

    def on_subscribe(*_: object) -> None:
        print("ready", flush=True)

    client.on_message = on_message
    client.on_subscribe = on_subscribe
    client.on_connect = lambda c, *_: c.subscribe(pattern, 0)
    client.connect(host, port)
    client.loop_forever()


if __name__ == "__main__":
    main()
