"""MQTT in and out: the broker connection and the topic rules the daemon relies on."""
