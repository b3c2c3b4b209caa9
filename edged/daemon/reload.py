"""What a reload must rebuild: the difference between the running config and the new one.

Pipelines and the router are always built anew from the new config (a failed build keeps the
old ones running). The rest is kept unless what it depends on changed: a new engine drops every
compiled module, a new intake must carry over what was already taken in, and a new broker link
means a new connection (the session stays with the broker) and the outbox opened anew with its
new bounds.
"""

from __future__ import annotations

from dataclasses import dataclass

from edged.config import Config


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    new_engine: bool  # engine settings or the state directory changed
    new_intake: bool  # queue size or overload policy changed
    new_link: bool  # the broker, the client id, the status topic or the outbox changed

    @property
    def keeps_connection(self) -> bool:
        return not self.new_link


def plan_reload(old: Config, new: Config) -> ReloadPlan:
    return ReloadPlan(
        new_engine=(old.engine, old.state_dir) != (new.engine, new.state_dir),
        new_intake=(old.daemon.queue_size, old.daemon.overload)
        != (new.daemon.queue_size, new.daemon.overload),
        new_link=(old.broker, old.client_id, old.status_topic, old.outbox)
        != (new.broker, new.client_id, new.status_topic, new.outbox),
    )
