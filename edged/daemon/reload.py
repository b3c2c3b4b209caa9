"""What a reload must rebuild: the difference between the running config and the new one.

Pipelines and the router are always built anew from the new config (a failed build keeps the
old ones running). The rest is kept unless what it depends on changed: a new engine drops every
compiled module, a new intake must carry over what was already taken in, and new broker links
mean new connections (the sessions stay with the brokers) and the outboxes opened anew with
their new bounds. The links are rebuilt together: an input of one broker may wait for an output
on another, and the window that ties them is one.
"""

from __future__ import annotations

from dataclasses import dataclass

from edged.config import Config


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    new_engine: bool  # engine settings or the state directory changed
    new_intake: bool  # queue size or overload policy changed
    new_link: bool  # a broker (with its outbox), the control broker or the status topic changed

    @property
    def keeps_connection(self) -> bool:
        return not self.new_link


def plan_reload(old: Config, new: Config) -> ReloadPlan:
    return ReloadPlan(
        new_engine=(old.engine, old.state_dir) != (new.engine, new.state_dir),
        new_intake=(old.daemon.queue_size, old.daemon.overload)
        != (new.daemon.queue_size, new.daemon.overload),
        new_link=(old.brokers, old.control_broker, old.node_id, old.status_topic)
        != (new.brokers, new.control_broker, new.node_id, new.status_topic),
    )
