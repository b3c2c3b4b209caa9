"""The `edged` command as a user runs it: exit codes and the messages they read."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.helpers.daemon import write_config
from tests.helpers.paths import ROOT, wasm


def edged(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edged", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_accepts_the_shipped_configs() -> None:
    """`edged check` loads every module of the demo and gateway configs and says OK."""
    for name in ("demo.yaml", "gateway.yaml"):
        result = edged("check", "--config", str(ROOT / "configs" / name))
        assert result.returncode == 0, result.stderr
        assert "OK" in result.stdout


def test_check_lists_every_config_error_with_its_key_path(tmp_path: Path) -> None:
    """A config with several mistakes gets all of them at once, exit 2, and no traceback."""
    path = write_config(
        tmp_path / "bad.yaml",
        {
            "node_id": "gw 1",
            "broker": {"host": "localhost", "port": "18x3", "password": "hunter2"},
            "modules": {"threshold": {"file": wasm("threshold")}},
            "pipelines": [
                {
                    "name": "p",
                    "subscribe": ["a/#/b"],
                    "filters": [{"module": "avg"}],
                    "outputs": [{"topic": "out/{nope}"}],
                }
            ],
        },
    )
    result = edged("check", "--config", str(path))
    assert result.returncode == 2
    err = result.stderr
    assert "Traceback" not in err
    for path_key in (
        "node_id",
        "broker.port",
        "pipelines[0].subscribe[0].topic",
        "pipelines[0].filters[0].module",
        "pipelines[0].outputs[0].topic",
    ):
        assert f"{path_key}:" in err, (path_key, err)
    assert "unknown module 'avg'; known: threshold" in err
    assert "hunter2" not in err


def test_check_reports_a_bad_module_with_its_reason(tmp_path: Path) -> None:
    """A module that is not an edged filter is refused by name and reason, exit 2."""
    junk = tmp_path / "junk.wasm"
    junk.write_bytes(b"\0asm\x01\0\0\0")
    notwasm = tmp_path / "text.wasm"
    notwasm.write_text("hello")
    path = write_config(
        tmp_path / "c.yaml",
        {
            "node_id": "gw",
            "broker": {},
            "modules": {"junk": {"file": str(junk)}, "text": {"file": str(notwasm)}},
            "pipelines": [
                {
                    "name": "p",
                    "subscribe": ["a"],
                    "filters": ["junk", "text"],
                    "outputs": [{"topic": "b"}],
                }
            ],
        },
    )
    result = edged("check", "--config", str(path))
    assert result.returncode == 2
    assert "modules.junk: does not export its linear memory as 'memory'" in result.stderr
    assert "modules.text: not a WebAssembly binary" in result.stderr


def test_check_reports_refused_parameters_with_the_filter_path(tmp_path: Path) -> None:
    """A filter whose init refuses its parameters is named by its place in the pipeline."""
    path = write_config(
        tmp_path / "c.yaml",
        {
            "node_id": "gw",
            "broker": {},
            "modules": {"threshold": {"file": wasm("threshold")}},
            "pipelines": [
                {
                    "name": "p",
                    "subscribe": ["a"],
                    "filters": [{"module": "threshold", "params": {"field": "x"}}],
                    "outputs": [{"topic": "b"}],
                }
            ],
        },
    )
    result = edged("check", "--config", str(path))
    assert result.returncode == 2
    assert "pipelines[0].filters[0]: module 'threshold' init returned" in result.stderr


def test_run_with_a_missing_config_fails_cleanly(tmp_path: Path) -> None:
    """`edged run` on a missing file exits 2 with one line, not a traceback."""
    result = edged("run", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "nope.yaml" in result.stderr


def test_filter_run_prints_what_the_filter_emits() -> None:
    """`edged filter run` feeds JSON lines to a filter and prints its output as JSON lines."""
    lines = "\n".join(
        json.dumps(r)
        for r in (
            {"topic": "s/1", "payload": {"value": 35}},
            {"topic": "s/1", "payload": '{"value": 10}'},
            {"topic": "s/2", "payload": {"value": 31.25}},
        )
    )
    result = edged("filter", "run", wasm("threshold"), "--param", "limit=30", stdin=lines)
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert out == [
        {"topic": "alert", "payload": '{"topic":"s/1","field":"value","value":35,"limit":30}'},
        {"topic": "alert", "payload": '{"topic":"s/2","field":"value","value":31.25,"limit":30}'},
    ]
    assert "3 in, 2 out, 0 failed, 0 bad lines" in result.stderr


def test_filter_run_ticks_at_end_of_input(tmp_path: Path) -> None:
    """With --tick-at-end, a windowed filter's aggregate is printed after the input."""
    data = tmp_path / "in.jsonl"
    data.write_text(
        "".join(json.dumps({"topic": "r/1", "payload": {"value": v}}) + "\n" for v in (1, 2, 6))
    )
    result = edged("filter", "run", wasm("average"), "-i", str(data), "--tick-at-end")
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    record = json.loads(line)
    assert record["topic"] == "r/1/avg"
    body = json.loads(record["payload"])
    assert (body["avg"], body["min"], body["max"], body["count"]) == (3.0, 1.0, 6.0, 3)


def test_filter_run_reports_bad_lines_and_exits_non_zero() -> None:
    """Malformed input lines are named by number on stderr and make the exit status 1."""
    result = edged(
        "filter",
        "run",
        wasm("passthrough"),
        stdin='{"topic": "a", "payload": "x"}\nnot json\n{"payload": "no topic"}\n',
    )
    assert result.returncode == 1
    assert json.loads(result.stdout) == {"topic": "a", "payload": "x"}
    assert "line 2: not a message line" in result.stderr
    assert "line 3: not a message line (missing 'topic')" in result.stderr


def test_filter_run_refuses_a_missing_required_param() -> None:
    """A filter whose init refuses the parameters stops with that reason, exit 2."""
    result = edged("filter", "run", wasm("threshold"), stdin="")
    assert result.returncode == 2
    assert "init returned" in result.stderr


def test_demo_runs_end_to_end() -> None:
    """`edged demo` starts its own broker and daemon, shows filtered output, and exits 0."""
    result = edged("demo", "--rounds", "10")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("summary: 60 readings in")
    assert "daemon exit 0" in summary
    assert "out/alerts/overheat" in result.stdout
    assert "/avg" in result.stdout


def test_stats_shows_a_running_nodes_metrics(
    start_daemon: Any, client: Any, topic_root: str, tmp_path: Path
) -> None:
    """`edged stats` reads the node's retained metrics and shows per-pipeline and filter figures."""
    daemon = start_daemon(
        {
            "node_id": "statsnode",
            "modules": {"threshold": {"file": wasm("threshold")}},
            "pipelines": [
                {
                    "name": "hot",
                    "subscribe": [f"{topic_root}/in"],
                    "filters": [{"module": "threshold", "params": {"limit": 10}}],
                    "outputs": [{"topic": f"{topic_root}/out"}],
                }
            ],
            "metrics": {"interval": 0.2},
        }
    )
    client.subscribe(f"{topic_root}/out")
    for value in (5, 15, 25):
        client.publish(f"{topic_root}/in", json.dumps({"value": value}))
    assert len(client.collect(2)) == 2
    config = write_config(
        tmp_path / "stats.yaml",
        {
            "node_id": "other",
            "broker": {"host": daemon.broker.host, "port": daemon.broker.port},
            "modules": {"t": {"file": wasm("threshold")}},
            "pipelines": [
                {"name": "p", "subscribe": ["a"], "filters": ["t"], "outputs": [{"topic": "b"}]}
            ],
        },
    )
    time.sleep(0.5)  # one more metrics interval, so the retained figures include all three
    result = edged("stats", "--config", str(config), "--node", "statsnode", "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    hot = metrics["pipelines"]["hot"]
    assert (hot["in"], hot["out"], hot["filtered"]) == (3, 2, 1)
    assert hot["filters"][0]["calls"] == 3 and hot["filters"][0]["fuel_used"] > 0
    table = edged("stats", "--config", str(config), "--node", "statsnode")
    assert table.returncode == 0
    assert "threshold" in table.stdout and "calls 3" in table.stdout
    missing = edged("stats", "--config", str(config), "--node", "nobody", "--timeout", "0.5")
    assert missing.returncode == 2
    assert "no metrics on edged/nobody/metrics" in missing.stderr


def test_stats_without_a_broker_exits_69(tmp_path: Path) -> None:
    """A broker that cannot be reached is one line and exit 69, not the usage errors' 2."""
    config = write_config(
        tmp_path / "nobroker.yaml",
        {
            "node_id": "gw",
            "broker": {"host": "127.0.0.1", "port": 1},
            "modules": {"t": {"file": wasm("threshold")}},
            "pipelines": [
                {"name": "p", "subscribe": ["a"], "filters": ["t"], "outputs": [{"topic": "b"}]}
            ],
        },
    )
    result = edged("stats", "--config", str(config), "--timeout", "0.5")
    assert result.returncode == 69
    assert result.stderr.startswith("edged: cannot connect to 127.0.0.1:1")
    assert "Traceback" not in result.stderr


def test_help_lists_the_exit_statuses() -> None:
    """`edged --help` ends with what each exit status means, 69 for an unreachable broker."""
    result = edged("--help")
    assert result.returncode == 0
    epilog = result.stdout.split("exit status:", 1)[1]
    assert [line.split()[0] for line in epilog.splitlines() if line[:3].strip().isdigit()] == [
        "0",
        "1",
        "2",
        "69",
        "130",
    ]


def test_check_says_which_broker_each_subscription_and_output_uses(tmp_path: Path) -> None:
    """With several brokers, `edged check` lists where each pipeline reads and writes, and
    where the control topics live, so a wrong `broker:` is seen before the daemon runs."""
    path = write_config(
        tmp_path / "two.yaml",
        {
            "node_id": "gw-1",
            "brokers": {
                "local": {"host": "localhost"},
                "cloud": {"host": "cloud.example.com", "port": 8884, "client_id": "gw-1"},
            },
            "control_broker": "cloud",
            "modules": {"threshold": {"file": wasm("threshold"), "params": {"limit": 30}}},
            "pipelines": [
                {
                    "name": "temps",
                    "subscribe": [{"topic": "sensors/#", "qos": 1}],
                    "filters": ["threshold"],
                    "outputs": [{"topic": "dt/{topic}", "qos": 1, "broker": "cloud"}],
                }
            ],
        },
    )
    result = edged("check", "--config", str(path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "brokers: local (localhost:1883), cloud (cloud.example.com:8884)" in lines[1]
    assert lines[1].endswith("control topics on cloud")
    assert "  in  sensors/# (QoS 1) from local" in lines
    assert "  out # -> dt/{topic} (QoS 1) to cloud" in lines


def test_two_daemons_cannot_share_a_state_dir(broker: Any, tmp_path: Path) -> None:
    """A second `edged run` with the first one's state directory exits 2 at once, naming the
    directory and the first one's pid, instead of replaying the first one's outbox."""
    from tests.helpers.daemon import DaemonProcess

    def config(name: str) -> Path:
        return write_config(
            tmp_path / f"{name}.yaml",
            {
                "node_id": name,
                "state_dir": str(tmp_path / "shared-state"),
                "broker": {"host": broker.host, "port": broker.port},
                "modules": {"passthrough": {"file": wasm("passthrough")}},
                "pipelines": [
                    {
                        "name": "p",
                        "subscribe": [f"{name}/in/#"],
                        "filters": ["passthrough"],
                        "outputs": [{"topic": f"{name}/out/{{topic}}"}],
                    }
                ],
            },
        )

    first = DaemonProcess(config("lock-a"), "edged/lock-a/status", broker)
    first.wait_online()
    second = edged("run", "--config", str(config("lock-b")))
    assert second.returncode == 2
    assert f"in use by another edged (pid {first.proc.pid})" in second.stderr
    assert str(tmp_path / "shared-state") in second.stderr
    assert first.stop() == 0


def test_check_warns_when_the_http_endpoint_is_not_on_loopback(tmp_path: Path) -> None:
    """`http.listen` on every interface is allowed, with a warning that the endpoint has no
    authentication; on loopback there is no warning."""

    def check(listen: str) -> subprocess.CompletedProcess[str]:
        path = write_config(
            tmp_path / "http.yaml",
            {
                "node_id": "gw-1",
                "broker": {"host": "localhost"},
                "http": {"listen": listen},
                "modules": {"passthrough": {"file": wasm("passthrough")}},
                "pipelines": [
                    {
                        "name": "p",
                        "subscribe": ["a/#"],
                        "filters": ["passthrough"],
                        "outputs": [{"topic": "b/{topic}"}],
                    }
                ],
            },
        )
        return edged("check", "--config", str(path))

    open_to_all = check("0.0.0.0:9108")
    assert open_to_all.returncode == 0
    assert "http.listen is 0.0.0.0:9108" in open_to_all.stderr
    assert "no authentication" in open_to_all.stderr
    assert "http.listen" not in check("127.0.0.1:9108").stderr


def test_check_warns_about_certificates_near_their_end_and_refuses_a_broken_pair(
    tmp_path: Path,
) -> None:
    """A client certificate that ends in 3 days and a CA file holding an expired certificate
    each get a warning with the key path, the file and the date (exit 0); a key that does not
    match its certificate is an error naming the key and the file (exit 2)."""
    import datetime

    from tests.helpers.certs import Authority, pem_cert, pem_key

    now = datetime.datetime.now(datetime.UTC)
    ca = Authority(days=365)
    expired = Authority("retired CA", not_after=now - datetime.timedelta(days=1))
    (tmp_path / "ca.pem").write_bytes(pem_cert(ca.cert) + pem_cert(expired.cert))
    pair = ca.issue("gw-1", days=3)
    pair.write(tmp_path / "gw.pem", tmp_path / "gw.key")
    tls = {key: str(tmp_path / name) for key, name in
           (("ca_file", "ca.pem"), ("cert_file", "gw.pem"), ("key_file", "gw.key"))}  # fmt: skip
    path = write_config(
        tmp_path / "tls.yaml",
        {
            "node_id": "gw-1",
            "brokers": {"local": {"host": "localhost"}, "cloud": {"host": "cloud", "tls": tls}},
            "modules": {"passthrough": {"file": wasm("passthrough")}},
            "pipelines": [
                {
                    "name": "p",
                    "subscribe": ["a/#"],
                    "filters": ["passthrough"],
                    "outputs": [{"topic": "b/{topic}", "broker": "cloud"}],
                }
            ],
        },
    )
    result = edged("check", "--config", str(path))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if ".tls." in line]
    ends = pair.cert.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC")
    assert (
        f"edged: warning: brokers.cloud.tls.cert_file: {tmp_path / 'gw.pem'} (CN=gw-1) "
        f"expires on {ends}, in 3 days" in warnings
    ), result.stderr
    [ca_line] = [line for line in warnings if "tls.ca_file" in line]
    assert f"{tmp_path / 'ca.pem'} (certificate 2) (CN=retired CA) expired on" in ca_line
    assert len(warnings) == 2, result.stderr

    (tmp_path / "gw.key").write_bytes(pem_key(ca.issue("gw-1").key))
    broken = edged("check", "--config", str(path))
    assert broken.returncode == 2, broken.stderr
    assert broken.stderr.strip().splitlines()[-1] == (
        f"edged: brokers.cloud.tls.key_file {tmp_path / 'gw.key'}: "
        f"the key does not match the certificate {tmp_path / 'gw.pem'}"
    )
