"""The HTTP endpoint in-process: /metrics, /healthz and /readyz of a daemon that is not running.

The daemon is built from a real config with real Wasm modules but its brokers are closed ports,
so every link is down: that is what /readyz must say. Messages are fed to it directly.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edged.config import parse_config
from edged.daemon.daemon import Daemon
from edged.errors import SetupError
from edged.mqtt.message import Message
from edged.mqtt.mosquitto import free_port
from tests.helpers.paths import wasm


def _config(tmp_path: Path, **extra: Any) -> Any:
    closed = free_port()  # nothing listens there: every link stays down
    data: dict[str, Any] = {
        "node_id": "gw",
        "state_dir": str(tmp_path / "state"),
        "brokers": {
            "local": {"host": "127.0.0.1", "port": closed},
            "cloud": {"host": "127.0.0.1", "port": closed, "client_id": "gw-cloud"},
        },
        "http": {"listen": "127.0.0.1:0"},
        "modules": {"threshold": {"file": wasm("threshold"), "params": {"limit": 30}}},
        "pipelines": [
            {
                "name": "temps",
                "subscribe": [{"topic": "s/#", "qos": 1}],
                "filters": ["threshold"],
                "outputs": [{"topic": "o/{topic}", "qos": 1, "broker": "cloud"}],
            }
        ],
    }
    data.update(extra)
    return parse_config(data)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(_config(tmp_path))
    d._start_http()
    yield d
    assert d.http is not None
    d.http.close()
    d._close_links()


def _get(daemon: Daemon, path: str) -> tuple[int, bytes]:
    assert daemon.http is not None
    url = f"http://127.0.0.1:{daemon.http.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _feed(daemon: Daemon, values: list[int]) -> None:
    for mid, value in enumerate(values, start=1):
        daemon._deliver(Message(b"s/a", json.dumps({"value": value}).encode(), 1, mid))


def test_metrics_count_what_the_daemon_did(daemon: Daemon) -> None:
    """After 10 readings of which 4 are over the threshold, /metrics says 10 received, 4
    published, 6 filtered, 10 filter calls with a latency histogram, and both brokers down."""
    _feed(daemon, list(range(25, 35)))
    status, body = _get(daemon, "/metrics")
    assert status == 200
    s = _samples(body)
    p = (("pipeline", "temps"),)
    f = (("module", "threshold"), ("pipeline", "temps"), ("step", "0"))
    assert s[("edged_messages_received_total", p)] == 10
    assert s[("edged_messages_published_total", p)] == 4
    assert s[("edged_messages_filtered_total", p)] == 6
    assert s[("edged_filter_calls_total", f)] == 10
    assert s[("edged_filter_call_duration_seconds_count", f)] == 10
    assert (
        s[("edged_filter_call_duration_seconds_bucket", tuple(sorted((*f, ("le", "+Inf")))))] == 10
    )
    assert 0 < s[("edged_filter_call_duration_seconds_sum", f)] < 1
    assert s[("edged_broker_connected", (("broker", "local"),))] == 0
    assert s[("edged_broker_connected", (("broker", "cloud"),))] == 0
    # the cloud's four outputs wait in its outbox, and their inputs wait for the commit
    assert s[("edged_broker_unacked_inputs", (("broker", "local"),))] == 4
    build = next(k for k in s if k[0] == "edged_build_info")
    assert dict(build[1])["version"]
    module = next(k for k in s if k[0] == "edged_module_info")
    assert dict(module[1])["version"] == "config" and len(dict(module[1])["digest"]) == 64
    assert s[("process_resident_memory_bytes", ())] > 10 * 2**20


def test_every_metric_follows_the_naming_conventions(daemon: Daemon) -> None:
    """Counters end in _total, names are edged_ or process_, and the whole page parses."""
    _feed(daemon, [40])
    _, body = _get(daemon, "/metrics")
    families = list(text_string_to_metric_families(body.decode()))
    assert len(families) > 30
    for family in families:
        assert family.name.startswith(("edged_", "process_")), family.name
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples)
        assert family.documentation, family.name


def test_label_values_with_quotes_and_newlines_are_escaped(daemon: Daemon) -> None:
    """A pipeline name with a quote, a backslash and a newline comes back intact through the
    exposition format's parser, rather than breaking the page."""
    odd = 'we"ird\\name\nsecond line'
    daemon.pipelines[0].name = odd
    _feed(daemon, [40])
    _, body = _get(daemon, "/metrics")
    s = _samples(body)
    assert s[("edged_messages_received_total", (("pipeline", odd),))] == 1


def test_healthz_follows_the_loop(daemon: Daemon) -> None:
    """/healthz is 200 while the loop came round recently and 503 once it has not for longer
    than alive_within (30 s by default), with how long ago it last did."""
    daemon.loop_at = time.monotonic()
    status, body = _get(daemon, "/healthz")
    assert status == 200 and json.loads(body)["alive"] is True
    daemon.loop_at = time.monotonic() - 31
    status, body = _get(daemon, "/healthz")
    answer = json.loads(body)
    assert status == 503 and answer["alive"] is False and answer["loop_last_round_s"] >= 31


def test_readyz_names_each_reason_and_its_broker(daemon: Daemon) -> None:
    """With both brokers down and every filter of the pipeline quarantined, /readyz is 503
    and lists a reason for each, by the brokers' config names and the pipeline's."""
    daemon.loop_at = time.monotonic()
    for step in daemon.pipelines[0].steps:
        step.guard.out = True
    status, body = _get(daemon, "/readyz")
    answer = json.loads(body)
    assert status == 503 and answer["ready"] is False
    reasons = [(r["reason"], r.get("broker") or r.get("pipeline")) for r in answer["reasons"]]
    assert reasons == [
        ("broker_down", "local"),
        ("broker_down", "cloud"),
        ("all_filters_quarantined", "temps"),
    ]


def test_readyz_says_when_an_outbox_fills(tmp_path: Path) -> None:
    """An outbox above ready_outbox_fill of its max_bytes makes /readyz say outbox_filling for
    that broker, with its bytes."""
    config = _config(
        tmp_path,
        http={"listen": "127.0.0.1:0", "ready_outbox_fill": 0.5},
        outbox={"max_bytes": "4 KiB"},
    )
    d = Daemon(config)
    d._start_http()
    try:
        _feed(d, [40 + i for i in range(40)])  # 40 outputs of ~70 bytes for the cloud
        cloud = d.links[1]
        cloud.flush_outbox(now=True)
        assert cloud.outbox is not None and cloud.outbox.bytes > 2048
        _, body = _get(d, "/readyz")
        filling = [r for r in json.loads(body)["reasons"] if r["reason"] == "outbox_filling"]
        assert [r["broker"] for r in filling] == ["cloud"]
        assert "of 4096 bytes" in filling[0]["detail"]
    finally:
        assert d.http is not None
        d.http.close()
        d._close_links()


def test_readyz_and_the_status_name_an_outbox_the_disk_refuses(daemon: Daemon) -> None:
    """Outputs for the cloud (down) that its outbox cannot store: /readyz says
    outbox_write_failing for the cloud with the disk's words, and so does the retained status;
    the inputs they came from stay unacknowledged."""
    from edged.daemon import health

    cloud = daemon.links[1]
    assert cloud.outbox is not None
    cloud.outbox._db.execute("PRAGMA query_only=1")  # every write refused, as read-only
    _feed(daemon, [40, 41, 42])
    cloud.flush_outbox(now=True)
    _, body = _get(daemon, "/readyz")
    failing = [r for r in json.loads(body)["reasons"] if r["reason"] == "outbox_write_failing"]
    assert [r["broker"] for r in failing] == ["cloud"]
    assert "readonly" in failing[0]["detail"] or "read-only" in failing[0]["detail"]
    assert len(daemon.window) == 3
    state, reason, _ = health.status(daemon)
    assert state == "degraded" and reason is not None
    assert "cloud: outbox write failing" in reason
    cloud.outbox._db.execute("PRAGMA query_only=0")
    cloud._store_at = 0.0
    cloud.flush_outbox(now=True)
    assert len(daemon.window) == 0
    _, body = _get(daemon, "/readyz")
    assert "outbox_write_failing" not in body.decode()


def test_unknown_paths_get_404(daemon: Daemon) -> None:
    """A wrong path says which ones exist."""
    status, body = _get(daemon, "/metric")
    assert status == 404 and "/metrics" in json.loads(body)["paths"]


def test_a_unix_socket_serves_the_same(tmp_path: Path) -> None:
    """`http.listen` as a path serves on a Unix socket (for a local agent), mode 0660, and the
    socket is removed when the endpoint closes."""
    path = tmp_path / "http.sock"
    d = Daemon(_config(tmp_path, http={"listen": str(path)}))
    d._start_http()
    try:
        assert path.is_socket() and path.stat().st_mode & 0o777 == 0o660
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(path))
        conn = HTTPConnection("localhost")
        conn.sock = sock
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        assert response.status == 200 and json.loads(response.read())["alive"] is True
        conn.close()
    finally:
        assert d.http is not None
        d.http.close()
        d._close_links()
    assert not path.exists()


def test_nothing_listens_without_an_http_section(tmp_path: Path) -> None:
    """The endpoint is opt-in: without `http:` no server is started."""
    d = Daemon(replace(_config(tmp_path), http=None))
    d._start_http()
    assert d.http is None
    d._close_links()


def test_a_port_in_use_is_a_setup_error_with_the_key(tmp_path: Path) -> None:
    """A port another process holds stops the start with the key path, not a traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        d = Daemon(_config(tmp_path, http={"listen": f"127.0.0.1:{port}"}))
        with pytest.raises(SetupError) as caught:
            d._start_http()
        d._close_links()
    assert "http.listen: cannot listen on 127.0.0.1:" in str(caught.value)
