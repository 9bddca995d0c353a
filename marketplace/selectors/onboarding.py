"""The provider onboarding checklist: assess fleet → register node → agent online → verified →
priced and listed → payout account."""

from collections.abc import Callable
from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse

from marketplace.models import FleetAssessment, Node, NodeStatus, Provider


@dataclass(frozen=True)
class ChecklistStep:
    key: str
    label: str
    done: bool
    url: str
    hint: str


def _url(name: str, fallback: str, *args: object) -> str:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:  # the page belongs to another part that may not be deployed yet
        return fallback


def onboarding_checklist(*, provider: Provider) -> list[ChecklistStep]:
    nodes = list(Node.objects.filter(provider=provider).order_by("id"))
    first_node_url = _url("provider:node-detail", "/provider/", nodes[0].pk) if nodes else ""
    node_new_url = _url("provider:node-new", "/provider/nodes/new/")

    def node_url(done: Callable[[Node], bool]) -> str:
        """The first node still needing this step, else the first node."""
        for node in nodes:
            if not done(node):
                return _url("provider:node-detail", "/provider/", node.pk)
        return first_node_url or node_new_url

    assessed = FleetAssessment.objects.filter(provider=provider).exists()
    online = [n for n in nodes if n.status == NodeStatus.ONLINE or n.agent_registered_at is not None]
    verified = [n for n in nodes if n.verified]
    listed = [n for n in nodes if n.listed and n.price_micros > 0]
    return [
        ChecklistStep(
            "assess",
            "Assess your fleet",
            assessed,
            _url("provider:assessment-new", "/provider/assessments/new/"),
            "Upload your GPU inventory to see which cards qualify for AI work and what they can earn.",
        ),
        ChecklistStep(
            "register",
            "Register a node",
            bool(nodes),
            node_new_url,
            "Describe a machine and get its agent token.",
        ),
        ChecklistStep(
            "online",
            "Start the agent",
            bool(online),
            node_url(lambda n: n.status == NodeStatus.ONLINE) if nodes else node_new_url,
            "Run rigshift-agent with the node's token; it reports the hardware and heartbeats.",
        ),
        ChecklistStep(
            "verified",
            "Get verified",
            bool(verified),
            node_url(lambda n: n.verified) if nodes else node_new_url,
            "The agent's report must match what you registered; staff or automatic checks then verify the node.",
        ),
        ChecklistStep(
            "listed",
            "Set a price and list",
            bool(listed),
            node_url(lambda n: n.listed and n.price_micros > 0) if nodes else node_new_url,
            "Set the on-demand price per GPU-hour and the minimum interruptible bid, then list the node.",
        ),
        ChecklistStep(
            "payout",
            "Connect a payout account",
            provider.payout_account_ready,
            _url("provider:payout-account", "/provider/payout-account/"),
            "Where your earnings are paid out.",
        ),
    ]
