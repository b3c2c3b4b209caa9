"""edged: MQTT in, sandboxed WebAssembly filters, MQTT out."""

__version__ = "0.1.0"
