"""What the tests share: paths, a recording MQTT client, the daemon as a subprocess.

paths      the source tree, the example filters and the test modules
mqtt       Client: a test-side MQTT client that records what arrives, in order
daemon     DaemonProcess: `edged run` in its own process; write_config
"""
