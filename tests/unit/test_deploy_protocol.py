"""The deploy protocol both sides share: topics, requests, acks and the modules status.

The node builds its messages with edged.deploy.protocol and `edged module` reads them with it;
these tests pin the bytes that go over the wire, which nodes and operators of other releases
rely on, and check that what one side writes the other reads back unchanged.
"""

from __future__ import annotations

import json

import pytest

from edged.deploy import protocol
from edged.deploy.protocol import Ack, ModulesStatus, ModuleState, Request, Target

# -- topics ------------------------------------------------------------------------------------


def test_a_node_target_sends_to_the_node_and_hears_only_it() -> None:
    """A request to one node goes to `<prefix>/<node>/<action>`; only its acks are read."""
    target = Target("site/edged", node="gw-1")
    assert target.request_topic(protocol.DEPLOY) == "site/edged/gw-1/deploy"
    assert target.request_topic(protocol.ROLLBACK) == "site/edged/gw-1/rollback"
    assert target.request_topic(protocol.REMOVE) == "site/edged/gw-1/remove"
    assert target.reply_filter(protocol.ACK) == "site/edged/gw-1/ack"
    assert target.reply_filter(protocol.MODULES) == "site/edged/gw-1/modules"
    assert target.node_of("site/edged/gw-1/ack") == "gw-1"


def test_a_group_target_sends_to_the_group_and_hears_every_node() -> None:
    """A group request goes to `<prefix>/groups/<group>/<action>`; acks come from any node."""
    target = Target("edged", group="hall")
    assert target.request_topic(protocol.DEPLOY) == "edged/groups/hall/deploy"
    assert target.request_topic(protocol.REMOVE) == "edged/groups/hall/remove"
    assert target.reply_filter(protocol.ACK) == "edged/+/ack"
    assert target.node_of("edged/gw-7/ack") == "gw-7"


def test_a_target_is_one_node_or_one_group() -> None:
    """A target naming both a node and a group, or neither, is refused."""
    with pytest.raises(ValueError, match="one node or one group"):
        Target("edged", node="gw-1", group="hall")
    with pytest.raises(ValueError, match="one node or one group"):
        Target("edged")


def test_a_node_listens_where_the_operator_sends() -> None:
    """Every topic `edged module` sends to for a node or one of its groups is one the node
    takes requests on, with the action the operator meant, and it takes no others."""
    topics = protocol.request_topics("edged", "gw-1", ["hall", "roof"])
    sent = {
        Target("edged", node="gw-1").request_topic(action): action for action in protocol.ACTIONS
    }
    for group in ("hall", "roof"):
        for action in protocol.ACTIONS:
            sent[Target("edged", group=group).request_topic(action)] = action
    assert topics == sent
    assert protocol.node_topic("edged", "gw-1", protocol.ACK) not in topics


# -- requests ----------------------------------------------------------------------------------


def test_a_request_is_the_module_and_its_request_id() -> None:
    """Rollback and remove send `{"module", "request_id"}`, and the node reads both back."""
    request = Request("threshold", "9f2c")
    assert request.encode() == b'{"module": "threshold", "request_id": "9f2c"}'
    assert Request.parse(request.encode()) == request
    assert Request.parse(b'{"module": "threshold"}') == Request("threshold", None)


@pytest.mark.parametrize(
    "payload",
    [b"", b"not json", b"[1, 2]", b'"threshold"', b"{}", b'{"module": 7}', b'{"module": null}'],
)
def test_a_request_without_a_module_name_is_malformed(payload: bytes) -> None:
    """A request that is not a JSON object with a string `module` is not read as one."""
    assert Request.parse(payload) is None


def test_a_request_id_that_is_not_text_is_dropped() -> None:
    """A request_id of another type is not echoed: the ack carries none."""
    assert Request.parse(b'{"module": "t", "request_id": 5}') == Request("t", None)


# -- acks --------------------------------------------------------------------------------------

ACKS = [
    Ack("gw-1", "r1", "deploy", "threshold", "activated", version=7, digest="ab" * 32, ts=1),
    Ack("gw-1", "r2", "deploy", "threshold", "already_active", version=7, digest="cd", ts=2),
    Ack("gw-1", "r3", "deploy", "threshold", "refused", "not_newer", "5 <= 7", version=5, ts=3),
    Ack("gw-1", None, "deploy", None, "refused", "malformed", "no header", ts=4),
    Ack("gw-1", "r5", "rollback", "threshold", "rolled_back", "requested", version=6, ts=5),
    Ack(
        "gw-1",
        None,
        "rollback",
        "threshold",
        "rolled_back",
        "probation: fuel",
        version=6,
        digest="ef",
        failed_version=7,
        ts=6,
    ),
    Ack("gw-1", "r7", "rollback", "avg", "refused", "no_previous", "the config's file", ts=7),
    Ack("gw-1", "r8", "remove", "threshold", "removed", version=0, ts=8),
    Ack("gw-1", "r9", "remove", "avg", "refused", "not_pushed", "already the config's", ts=9),
]


@pytest.mark.parametrize("ack", ACKS, ids=lambda a: f"{a.action}-{a.result}-{a.request_id}")
def test_what_a_node_acks_the_operator_reads_back(ack: Ack) -> None:
    """An ack the node sends, read by `edged module` from the node's topic, is the same ack."""
    assert Ack.parse(ack.encode(), "gw-1") == ack


def test_an_ack_is_compact_json_in_wire_order() -> None:
    """An activation ack is the JSON of docs/deploy.md, key for key and byte for byte."""
    ack = Ack("gw-1", "9f2c", "deploy", "threshold", "activated", version=7, digest="1a2b", ts=17)
    assert ack.encode() == (
        b'{"node_id":"gw-1","request_id":"9f2c","action":"deploy","module":"threshold",'
        b'"result":"activated","reason":null,"detail":null,"version":7,"digest":"1a2b","ts":17}'
    )


def test_an_ack_carries_the_fields_its_result_has() -> None:
    """A field that does not apply to a result is left out rather than sent as null."""
    keys = {(a.action, a.result, a.request_id): list(a.fields()) for a in ACKS}
    head = ["node_id", "request_id", "action", "module", "result", "reason", "detail"]
    assert keys["deploy", "activated", "r1"] == [*head, "version", "digest", "ts"]
    assert keys["deploy", "refused", "r3"] == [*head, "version", "ts"]
    assert keys["deploy", "refused", None] == [*head, "version", "ts"]
    assert keys["rollback", "rolled_back", "r5"] == [
        *head,
        "version",
        "digest",
        "failed_version",
        "ts",
    ]
    assert keys["rollback", "refused", "r7"] == [*head, "ts"]
    assert keys["remove", "removed", "r8"] == [*head, "version", "ts"]
    assert keys["remove", "refused", "r9"] == [*head, "ts"]
    rolled = json.loads(ACKS[4].encode())
    assert rolled["digest"] is None and rolled["failed_version"] is None


@pytest.mark.parametrize(
    "payload",
    [b"", b"\xff\xfe", b"offline", b"[]", b'"activated"', b"{}", b'{"result": 1}', b"null"],
)
def test_a_payload_that_is_not_an_ack_is_ignored(payload: bytes) -> None:
    """Something else on an ack topic (not JSON, not an object, no text `result`) is skipped."""
    assert Ack.parse(payload, "gw-1") is None


def test_an_ack_field_of_the_wrong_type_reads_as_missing() -> None:
    """A version that is text or a boolean, or an empty reason, is read as not given."""
    payload = b'{"result": "activated", "version": "7", "failed_version": true, "reason": ""}'
    ack = Ack.parse(payload, "gw-3")
    assert ack == Ack("gw-3", None, None, None, "activated")


def test_the_node_is_the_one_the_topic_names() -> None:
    """The sender is read from the ack's topic, whatever node_id its payload claims."""
    ack = Ack.parse(b'{"node_id": "gw-1", "result": "removed"}', "gw-2")
    assert ack is not None and ack.node_id == "gw-2"


def test_success_is_what_the_action_asked_for() -> None:
    """A push succeeds when activated or already active; a rollback or remove when done."""
    assert protocol.SUCCESS[protocol.DEPLOY] == {"activated", "already_active"}
    assert protocol.SUCCESS[protocol.ROLLBACK] == {"rolled_back"}
    assert protocol.SUCCESS[protocol.REMOVE] == {"removed"}


# -- the modules status ------------------------------------------------------------------------


def _status() -> ModulesStatus:
    return ModulesStatus(
        node_id="gw-1",
        groups=("greenhouses",),
        modules={
            "threshold": ModuleState.pushed(7, "1a2b", (6, "9c8d"), probation=True),
            "average": ModuleState.from_config("77aa"),
        },
        ts=1763700000000,
    )


def test_the_modules_status_is_compact_json_in_wire_order() -> None:
    """The retained status is the JSON of docs/deploy.md, byte for byte."""
    assert _status().encode() == (
        b'{"node_id":"gw-1","groups":["greenhouses"],"modules":{"threshold":{"version":7,'
        b'"digest":"1a2b","source":"pushed","previous":{"version":6,"digest":"9c8d"},'
        b'"probation":true},"average":{"version":0,"source":"config","digest":"77aa"}},'
        b'"ts":1763700000000}'
    )


def test_what_a_node_publishes_as_status_the_operator_reads_back() -> None:
    """The status a node retains, read by `edged module status`, is the same status."""
    status = _status()
    assert ModulesStatus.from_json(json.loads(status.encode())) == status
    unread = ModulesStatus("gw-2", (), {"a": ModuleState.from_config(None)}, ts=5)
    assert ModulesStatus.from_json(json.loads(unread.encode())) == unread


def test_a_status_without_groups_counts_for_any_group() -> None:
    """A status that names no groups is shown for every group; one that does, only for those."""
    assert _status().member_of("greenhouses") and not _status().member_of("hall")
    anywhere = ModulesStatus.from_json({"node_id": "old", "modules": {}})
    assert anywhere is not None and anywhere.member_of("hall")


def test_a_status_keeps_what_it_can_read() -> None:
    """Entries that are not objects are skipped; a payload that is no object is no status."""
    read = ModulesStatus.from_json(
        {"modules": {"a": "x", "b": {"version": 2, "previous": {"version": "1"}}}, "groups": 3}
    )
    assert read == ModulesStatus(None, None, {"b": ModuleState(2, None, None)})
    assert ModulesStatus.from_json([1]) is None
