"""Several brokers: `brokers:`, which broker each subscription and output uses, and their limits.

The one-broker form `broker:` still reads as one broker named `default`; `brokers:` names each
link, the first being the default for subscriptions, outputs and the control topics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edged.config import BrokerConfig, OutboxConfig, OutputRule, Subscription, parse_config
from edged.config.load import load_config
from edged.config.model import LinkLimits
from tests.unit.config.samples import MIB, errors_of, minimal, write

KIB = 1024

TWO_BROKERS = """\
node_id: gw-1
brokers:
  local: {host: 127.0.0.1, port: 1883}
  cloud:
    host: 127.0.0.1
    port: 8883
    mqtt_version: "5"
    client_id: gw-1-cloud
    tls: {ca_file: certs/ca.pem, cert_file: certs/client.pem, key_file: certs/client.key}
    outbox: {max_bytes: 8 MiB, when_full: drop_newest}
    limits:
      max_payload: 128 KiB
      max_topic_bytes: 256
      max_topic_levels: 8
      max_publish_rate: 100
control_broker: local
outbox: {max_bytes: 32 MiB, max_age: 3600}
modules:
  passthrough: {file: filters/passthrough.wasm}
pipelines:
  - name: p
    subscribe:
      - {topic: sensors/#, qos: 1, broker: local}
      - {topic: "$share/grp/jobs/#", qos: 1, broker: cloud}
    filters: [passthrough]
    outputs:
      - {match: "#", topic: "out/{topic}", qos: 1, broker: cloud}
      - {topic: "local/{topic}"}
"""


def two_brokers(**brokers: Any) -> dict[str, Any]:
    """minimal() with `brokers:` in place of `broker:` (local, then cloud unless given)."""
    data = minimal()
    del data["broker"]
    data["brokers"] = brokers or {"local": {}, "cloud": {"port": 8884}}
    return data


# -- broker: and brokers: ---------------------------------------------------------------------


def test_the_one_broker_form_is_one_broker_named_default(confdir: Path) -> None:
    """A config written before there were several brokers still works: its `broker:` is one link
    named `default`, which every subscription and output uses and the control topics live on."""
    config = parse_config(minimal(), base_dir=confdir)
    assert list(config.brokers) == ["default"]
    assert config.control_broker == "default"
    assert config.broker is config.brokers["default"]
    assert config.broker.name == "default"
    (pipeline,) = config.pipelines
    assert [s.broker for s in pipeline.subscribe] == ["default"]
    assert [o.broker for o in pipeline.outputs] == ["default"]


def test_brokers_keep_their_order_and_the_first_is_the_default(confdir: Path) -> None:
    """Listed brokers keep the config's order; subscriptions, outputs and the control topics
    that name no broker use the first one."""
    data = two_brokers(cloud={"port": 8884}, local={})
    config = parse_config(data, base_dir=confdir)
    assert list(config.brokers) == ["cloud", "local"]
    assert [b.name for b in config.brokers.values()] == ["cloud", "local"]
    assert config.control_broker == "cloud"
    assert config.broker.port == 8884
    (pipeline,) = config.pipelines
    assert pipeline.subscribe == (Subscription(topic="sensors/+/temperature", broker="cloud"),)
    assert pipeline.outputs == (OutputRule(topic="out/{topic}", broker="cloud"),)


def test_subscriptions_outputs_and_control_name_their_broker(confdir: Path) -> None:
    """Each subscription and output rule goes to the broker it names, and control_broker moves
    the status, metrics and dead letters (and the client id reported) to another broker."""
    data = two_brokers(local={}, cloud={"port": 8884, "client_id": "gw-1-cloud"})
    data["control_broker"] = "cloud"
    data["pipelines"][0]["subscribe"] = ["a/#", {"topic": "b/#", "broker": "cloud"}]
    data["pipelines"][0]["outputs"] = [
        {"match": "x/#", "topic": "up/{topic}", "broker": "cloud"},
        {"topic": "down/{topic}", "broker": "local"},
    ]
    config = parse_config(data, base_dir=confdir)
    assert config.control_broker == "cloud"
    assert config.broker.name == "cloud"
    assert config.client_id == "gw-1-cloud"
    (pipeline,) = config.pipelines
    assert [(s.topic, s.broker) for s in pipeline.subscribe] == [("a/#", "local"), ("b/#", "cloud")]
    assert [(o.topic, o.broker) for o in pipeline.outputs] == [
        ("up/{topic}", "cloud"),
        ("down/{topic}", "local"),
    ]


def test_the_documented_two_broker_file_loads(confdir: Path) -> None:
    """The two-broker example as a YAML file: sizes with units, the shared subscription, the
    per-link outbox and limits all land where they belong."""
    config = load_config(write(confdir, TWO_BROKERS))
    local, cloud = config.brokers.values()
    assert (local.name, local.host, local.port, local.mqtt_version) == (
        "local",
        "127.0.0.1",
        1883,
        "5",
    )
    assert (cloud.name, cloud.port, cloud.client_id) == ("cloud", 8883, "gw-1-cloud")
    assert cloud.tls is not None and cloud.tls.ca_file == confdir / "certs/ca.pem"
    assert cloud.limits == LinkLimits(
        max_payload=128 * KIB, max_topic_bytes=256, max_topic_levels=8, max_publish_rate=100.0
    )
    assert local.limits == LinkLimits()
    assert local.outbox == OutboxConfig(max_bytes=32 * MIB, max_age=3600.0)
    assert cloud.outbox == OutboxConfig(max_bytes=8 * MIB, max_age=3600.0, when_full="drop_newest")
    assert config.control_broker == "local"
    (pipeline,) = config.pipelines
    assert pipeline.subscribe == (
        Subscription(topic="sensors/#", qos=1, broker="local"),
        Subscription(topic="$share/grp/jobs/#", qos=1, broker="cloud"),
    )
    assert [o.broker for o in pipeline.outputs] == ["cloud", "local"]


# -- naming brokers ---------------------------------------------------------------------------


def test_an_unknown_broker_is_named_with_the_known_ones(confdir: Path) -> None:
    """A typo in a subscription's, an output's or control_broker's broker is reported at its
    key path with the brokers the config does define, in their order."""
    data = two_brokers()
    data["control_broker"] = "lcoal"
    data["pipelines"][0]["subscribe"] = ["ok/#", {"topic": "a/#", "broker": "locl"}]
    data["pipelines"][0]["outputs"][0]["broker"] = "clod"
    assert errors_of(data, confdir) == [
        "control_broker: unknown broker 'lcoal'; known: 'local', 'cloud'",
        "pipelines[0].subscribe[1].broker: unknown broker 'locl'; known: 'local', 'cloud'",
        "pipelines[0].outputs[0].broker: unknown broker 'clod'; known: 'local', 'cloud'",
    ]


def test_the_one_broker_form_knows_only_default(confdir: Path) -> None:
    """With `broker:` the one broker is `default`: naming it works, any other name is unknown."""
    data = minimal()
    data["control_broker"] = "default"
    data["pipelines"][0]["outputs"][0]["broker"] = "default"
    assert parse_config(data, base_dir=confdir).control_broker == "default"
    data["pipelines"][0]["outputs"][0]["broker"] = "cloud"
    assert errors_of(data, confdir) == [
        "pipelines[0].outputs[0].broker: unknown broker 'cloud'; known: 'default'"
    ]


def test_a_broker_name_must_be_a_string(confdir: Path) -> None:
    """`broker: 1` in an output is refused as not a string, not taken as some broker."""
    data = two_brokers()
    data["pipelines"][0]["outputs"][0]["broker"] = 1
    assert errors_of(data, confdir) == [
        "pipelines[0].outputs[0].broker: expected a string, got integer 1"
    ]


def test_broker_and_brokers_together_are_refused(confdir: Path) -> None:
    """Both forms at once would leave it unclear which broker is meant: one error at brokers."""
    data = minimal()
    data["brokers"] = {"local": {}}
    assert errors_of(data, confdir) == [
        "brokers: cannot be used together with broker (the one-broker form)"
    ]


def test_an_empty_brokers_mapping_is_refused(confdir: Path) -> None:
    """`brokers: {}` leaves the node nowhere to connect: refused, and nothing else reported."""
    data = two_brokers()
    data["brokers"] = {}
    assert errors_of(data, confdir) == ["brokers: needs at least one broker"]


def test_no_broker_at_all_is_refused(confdir: Path) -> None:
    """A config with neither form says the broker is missing."""
    data = minimal()
    del data["broker"]
    assert errors_of(data, confdir) == ["broker: required key is missing"]


@pytest.mark.parametrize("name", ["bad name", "a/b", "", "clöud"])
def test_a_bad_broker_name_is_refused(confdir: Path, name: str) -> None:
    """A broker name goes into file names and metrics keys: only letters, digits, '_' and '-'."""
    data = two_brokers(**{name: {}})
    assert errors_of(data, confdir) == [
        f"brokers.{name}: bad broker name: may only use letters, digits, '_' and '-'"
    ]


def test_a_broker_entry_must_be_a_mapping(confdir: Path) -> None:
    """A broker given as a scalar is refused at its name."""
    data = two_brokers(local=5)
    assert errors_of(data, confdir) == ["brokers.local: expected a mapping, got integer 5"]


def test_a_mistake_inside_a_broker_has_its_path(confdir: Path) -> None:
    """Each broker's settings are checked as `broker:`'s are, errors naming the broker."""
    data = two_brokers(local={}, cloud={"port": 0, "hots": "x"})
    assert errors_of(data, confdir) == [
        "brokers.cloud.port: must be between 1 and 65535, got 0",
        "brokers.cloud.hots: unknown key; did you mean 'host'?",
    ]


# -- one identity per connection --------------------------------------------------------------


def test_two_links_with_one_identity_are_refused(confdir: Path) -> None:
    """Two brokers at the same host and port with the same client id would kick each other off
    the broker on every connect; the second is refused at its client_id."""
    data = two_brokers(local={"host": "mqtt.lan"}, again={"host": "mqtt.lan"})
    assert errors_of(data, confdir) == [
        "brokers.again.client_id: broker 'local' connects to mqtt.lan:1883 with the same client "
        "id 'edged-gw-1': give one of them its own client_id"
    ]


def test_a_written_client_id_equal_to_the_derived_one_clashes(confdir: Path) -> None:
    """The clash is on the client id actually used: one written out as `edged-<node_id>` is the
    same as another broker's default."""
    data = two_brokers(a={"client_id": "edged-gw-1"}, b={})
    (error,) = errors_of(data, confdir)
    assert error.startswith("brokers.b.client_id: broker 'a' connects to localhost:1883 ")


@pytest.mark.parametrize(
    "second",
    [{"client_id": "gw-1-b"}, {"port": 1884}, {"host": "other.lan"}, {"tls": {}}],
    ids=["client_id", "port", "host", "tls-port"],
)
def test_links_differing_in_client_id_or_address_are_accepted(
    confdir: Path, second: dict[str, Any]
) -> None:
    """Two links to one broker with their own client ids, or with one client id to different
    ports or hosts (`tls:` moves the port to 8883), are fine."""
    config = parse_config(two_brokers(a={}, b=second), base_dir=confdir)
    assert list(config.brokers) == ["a", "b"]


# -- per-link outbox and limits ---------------------------------------------------------------


def test_a_brokers_outbox_overrides_only_the_keys_it_gives(confdir: Path) -> None:
    """A broker's own `outbox:` changes the keys it names; the rest come from the top-level
    `outbox:`, which a broker without one takes whole."""
    data = two_brokers(local={}, cloud={"port": 8884, "outbox": {"when_full": "block"}})
    data["outbox"] = {"max_bytes": "16 MiB", "max_age": 600}
    config = parse_config(data, base_dir=confdir)
    assert config.outbox == OutboxConfig(max_bytes=16 * MIB, max_age=600.0)
    assert config.brokers["local"].outbox == config.outbox
    assert config.brokers["cloud"].outbox == OutboxConfig(
        max_bytes=16 * MIB, max_age=600.0, when_full="block"
    )


def test_a_brokers_outbox_over_the_defaults(confdir: Path) -> None:
    """Without a top-level outbox a broker's own is laid over the defaults (64 MiB, 7 days)."""
    data = two_brokers(local={"outbox": {"max_bytes": "1 MiB"}}, cloud={"port": 8884})
    config = parse_config(data, base_dir=confdir)
    assert config.brokers["local"].outbox == OutboxConfig(max_bytes=MIB)
    assert config.brokers["cloud"].outbox == OutboxConfig()


def test_a_brokers_outbox_is_checked_at_its_path(confdir: Path) -> None:
    """Mistakes in a broker's outbox are reported under that broker."""
    data = two_brokers(local={}, cloud={"port": 8884, "outbox": {"max_bytes": 10, "x": 1}})
    assert errors_of(data, confdir) == [
        "brokers.cloud.outbox.max_bytes: must be at least 1 KiB, got 10 B",
        "brokers.cloud.outbox.x: unknown key; known keys: max_age, max_bytes, when_full",
    ]


@pytest.mark.parametrize("given", [None, {}], ids=["null", "empty"])
def test_limits_are_off_unless_given(confdir: Path, given: dict[str, Any] | None) -> None:
    """A broker without `limits:` (or with an empty one) has no limit of edged's own."""
    data = minimal()
    data["broker"] = {"limits": given}
    limits = parse_config(data, base_dir=confdir).broker.limits
    assert limits == LinkLimits()
    assert not limits.any


def test_limits_take_sizes_with_units(confdir: Path) -> None:
    """max_payload takes a size such as "128 KiB"; the others are plain numbers."""
    data = two_brokers(
        local={},
        cloud={"port": 8884, "limits": {"max_payload": "128 KiB", "max_topic_levels": 8}},
    )
    limits = parse_config(data, base_dir=confdir).brokers["cloud"].limits
    assert limits == LinkLimits(max_payload=128 * KIB, max_topic_levels=8)
    assert limits.any


def test_a_publish_rate_alone_limits_no_output(confdir: Path) -> None:
    """A rate limit paces publishes but refuses none, so it is not a limit on outputs."""
    data = minimal()
    data["broker"] = {"limits": {"max_publish_rate": 0.5}}
    limits = parse_config(data, base_dir=confdir).broker.limits
    assert limits == LinkLimits(max_publish_rate=0.5)
    assert not limits.any


def test_bad_limits_are_refused_at_their_paths(confdir: Path) -> None:
    """Limits out of range, of the wrong kind or misspelt are each one error under the broker."""
    data = two_brokers(
        local={"limits": {"max_payload": 0, "max_topic_bytes": 65536, "max_paylod": 3}},
        cloud={
            "port": 8884,
            "limits": {
                "max_payload": "300 MiB",
                "max_topic_levels": "8",
                "max_publish_rate": 0,
            },
        },
    )
    assert errors_of(data, confdir) == [
        "brokers.local.limits.max_payload: must be between 1 B and 256 MiB, got 0 B",
        "brokers.local.limits.max_topic_bytes: must be between 1 and 65535, got 65536",
        "brokers.local.limits.max_paylod: unknown key; did you mean 'max_payload'?",
        "brokers.cloud.limits.max_payload: must be between 1 B and 256 MiB, got 300 MiB",
        "brokers.cloud.limits.max_topic_levels: expected an integer, got string '8'",
        "brokers.cloud.limits.max_publish_rate: must be greater than 0, got 0",
    ]


def test_limits_in_the_one_broker_form(confdir: Path) -> None:
    """`broker:` takes limits too, and reports them under `broker.limits`."""
    data = minimal()
    data["broker"] = {"limits": {"max_payload": "lots", "max_topic_levels": 0}}
    assert errors_of(data, confdir) == [
        'broker.limits.max_payload: expected a size such as 16777216, "512 KiB" or "16 MiB", '
        "got 'lots'",
        "broker.limits.max_topic_levels: must be between 1 and 65535, got 0",
    ]


# -- shared subscriptions ---------------------------------------------------------------------


def test_a_shared_subscription_is_accepted_under_mqtt_5(confdir: Path) -> None:
    """`$share/<group>/<filter>` is kept as written (the broker needs the prefix)."""
    data = minimal()
    data["pipelines"][0]["subscribe"] = ["$share/g/x/#"]
    (pipeline,) = parse_config(data, base_dir=confdir).pipelines
    assert pipeline.subscribe == (Subscription(topic="$share/g/x/#"),)


def test_a_shared_subscription_is_refused_under_mqtt_3_1_1(confdir: Path) -> None:
    """MQTT 3.1.1 has no shared subscriptions: a 3.1.1 broker would take `$share/...` as a
    plain filter that matches nothing, so the config is refused at the topic."""
    data = two_brokers(local={}, old={"port": 1884, "mqtt_version": "3.1.1"})
    data["pipelines"][0]["subscribe"] = [
        {"topic": "$share/g/x/#", "broker": "local"},
        {"topic": "$share/g/x/#", "broker": "old"},
    ]
    assert errors_of(data, confdir) == [
        "pipelines[0].subscribe[1].topic: a shared subscription ($share/...) needs MQTT 5; "
        "broker 'old' has mqtt_version \"3.1.1\""
    ]


BAD_GROUP = "a shared subscription is $share/<group>/<filter>, the group without '+' or '#'"
NO_FILTER = "a shared subscription needs a topic filter after $share/<group>/"


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("$share//x", BAD_GROUP),
        ("$share/g+/x", BAD_GROUP),
        ("$share/g/", NO_FILTER),
        ("$share/g", NO_FILTER),
        ("$share/g/a/#/b", "'#' must be a whole level and the last one"),
    ],
)
def test_a_malformed_shared_subscription_is_refused(confdir: Path, topic: str, reason: str) -> None:
    """A shared subscription needs a group without wildcards and a valid filter after it."""
    data = minimal()
    data["pipelines"][0]["subscribe"] = ["ok/#", topic]
    assert errors_of(data, confdir) == [f"pipelines[0].subscribe[1].topic: {reason}"]


# -- outbox files -----------------------------------------------------------------------------


def test_outbox_file_names(confdir: Path) -> None:
    """The one broker of `broker:` keeps `outbox.sqlite3`, so an upgrade finds its queued
    outputs; every named broker has its own `outbox-<name>.sqlite3`."""
    assert parse_config(minimal(), base_dir=confdir).broker.outbox_file == "outbox.sqlite3"
    config = parse_config(two_brokers(), base_dir=confdir)
    assert [b.outbox_file for b in config.brokers.values()] == [
        "outbox-local.sqlite3",
        "outbox-cloud.sqlite3",
    ]
    assert BrokerConfig(name="default").outbox_file == "outbox.sqlite3"
