"""Signals other apps listen to (marketplace imports neither billing nor broker).

`node_went_offline` is sent on commit, once per node, when the offline sweep marks a node offline
(its heartbeats stopped for `RIGSHIFT_NODE_OFFLINE_AFTER_S`). Keyword argument: `node_id: int`.
The broker's failover listens to it::

    from marketplace.signals import node_went_offline

    @receiver(node_went_offline)
    def on_node_offline(sender, *, node_id: int, **kwargs): ...
"""

from django.dispatch import Signal

node_went_offline = Signal()
node_verified = Signal()
