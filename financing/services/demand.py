"""Open contract demand: a customer's reserved contract no provider has capacity for, fulfilled by a provider that
buys the hardware with a contract-backed advance (rules: services/contract_underwriting.py).

Life of a demand
  1. `contract_demand_post` (customer): N GPUs of a model for M months at a price per GPU-hour; the terms are those
     of a reserved contract (services/reserved.py: discount by term, monthly price). The wallet must hold the first
     month now; nothing is charged until delivery.
  2. `contract_demand_offer` (provider, with or without history): an application priced against the contract's
     receivable (the offer or the decline reasons, stored like any application). Staff approve it like any offer
     (services/applications.py): the demand is then `awarded` to that provider and closed to other offers.
  3. Lenders fund it; at disbursement the delivery deadline starts (`delivery_days`).
  4. `demand_deliver_on_node` (when staff verify one of the provider's nodes, after a passed compute challenge —
     marketplace's `node_verified` signal; the daily review catches up): a verified node of the model with enough
     GPUs not held by other contracts starts the customer's reserved contract on it (month 1 charged now). Its
     payments go first to the lenders through the existing waterfall; the advance's 60-day minimum progress counts
     from delivery. If the customer cannot pay month 1, the demand is released and the advance repays from the
     node's market earnings like any advance.
  5. `demands_review` (daily): a demand not delivered by its deadline is released (the customer is charged
     nothing) and the advance recalled (`_recall`): what the provider's payable holds repays it now (key
     `advance-recall:<advance>`); what remains is recovered through a raised withhold rate when the provider has
     other verified nodes (delinquent, then the usual policy), or written down (defaulted) when it has none.
"""

from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from billing.errors import InsufficientFunds
from billing.models import Account, AccountKind
from billing.services.ledger import account_get, ledger_transfer
from common.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from common.money import MICROS, format_usd
from financing.models import (
    OPEN_ADVANCE_STATUSES,
    Advance,
    AdvanceApplication,
    ApplicationStatus,
    ContractDemand,
    ContractDemandStatus,
    RepaymentKind,
    ReservedContract,
    ReservedContractStatus,
)
from financing.selectors.demand import contract_underwriting_inputs, customer_credit, demand_advance
from financing.services.contract_underwriting import CONTRACT_RULES_VERSION, underwrite_contract
from financing.services.underwriting import Decision
from marketplace.models import GPUModel, Node, Tier

MAX_DEMAND_GPUS = 256
MIN_TERM_MONTHS = 3
DEFAULT_DELIVERY_DAYS = 45
MAX_DELIVERY_DAYS = 120
MAX_PRICE_MICROS = 50 * MICROS  # per GPU-hour


def contract_demand_post(
    *,
    customer_user: User,
    gpu_model_slug: str,
    gpu_count: int,
    term_months: int,
    price_micros: int,
    delivery_days: int = DEFAULT_DELIVERY_DAYS,
) -> ContractDemand:
    """Post a reserved contract as open demand (validated first: nothing saved on bad input)."""
    from financing.services.reserved import MAX_TERM_MONTHS, reserved_discount_bps, reserved_monthly_micros

    if not hasattr(customer_user, "customer"):
        raise PermissionDenied("Only customers post contract demand.")
    model = GPUModel.objects.filter(slug=gpu_model_slug).first()
    if model is None or model.tier == Tier.UNSUITABLE:
        raise ValidationFailed(f"gpu_model: {gpu_model_slug!r} is not an AI-grade catalog model.")
    for name, value, low, high in (
        ("gpu_count", gpu_count, 1, MAX_DEMAND_GPUS),
        ("term_months", term_months, MIN_TERM_MONTHS, MAX_TERM_MONTHS),
        ("delivery_days", delivery_days, 7, MAX_DELIVERY_DAYS),
        ("price", price_micros, 10_000, MAX_PRICE_MICROS),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValidationFailed(f"{name}: between {low} and {high}.", details={name: ["Out of range."]})
    discount = reserved_discount_bps(term_months=term_months)
    monthly = reserved_monthly_micros(gpu_count=gpu_count, list_price_micros=price_micros, discount_bps=discount)
    wallet = customer_credit(customer_user=customer_user, now=timezone.now()).wallet_micros
    if wallet < monthly:
        raise InsufficientFunds(
            f"Your wallet holds {format_usd(micros=wallet)}; the first month ({format_usd(micros=monthly)}) must be "
            "there when you post demand.",
            shortfall_micros=monthly - wallet,
        )
    return ContractDemand.objects.create(
        customer=customer_user,
        gpu_model=model,
        gpu_count=gpu_count,
        term_months=term_months,
        list_price_micros=price_micros,
        discount_bps=discount,
        monthly_micros=monthly,
        delivery_days=delivery_days,
    )


def contract_demand_cancel(*, customer_user: User, demand_id: int) -> ContractDemand:
    with transaction.atomic():
        demand = ContractDemand.objects.select_for_update().filter(pk=demand_id, customer=customer_user).first()
        if demand is None:
            raise NotFound(f"No demand {demand_id} of yours.")
        if demand.status != ContractDemandStatus.OPEN:
            raise Conflict(f"demand {demand_id} is {demand.status}; only open demand can be cancelled")
        demand.status = ContractDemandStatus.CANCELLED
        demand.save(update_fields=["status"])
        return demand


def contract_demand_quote(*, provider_user: User, demand: ContractDemand) -> Decision:
    """The advance this provider would be offered to fulfil `demand` now (saves nothing)."""
    from financing.services.applications import unit_cost_micros

    inputs = contract_underwriting_inputs(
        provider_user=provider_user, demand=demand, unit_cost_micros=unit_cost_micros(gpu_model=demand.gpu_model)
    )
    return underwrite_contract(inputs=inputs)


def contract_demand_offer(*, provider_user: User, demand_id: int, node_id: int | None = None) -> AdvanceApplication:
    """A provider offers to fulfil open demand: an application priced against the contract (offer or reasons)."""
    from financing.services.applications import unit_cost_micros

    if not hasattr(provider_user, "provider"):
        raise PermissionDenied("Only provider accounts may offer to fulfil demand.")
    demand = ContractDemand.objects.select_related("gpu_model", "customer").filter(pk=demand_id).first()
    if demand is None or (demand.status != ContractDemandStatus.OPEN and demand.awarded_to_id != provider_user.pk):
        raise NotFound(f"No open demand {demand_id}.")
    node = None
    if node_id is not None:
        node = Node.objects.filter(pk=node_id, provider__user=provider_user).first()
        if node is None:
            raise NotFound(f"No node {node_id} of yours.")
    unit = unit_cost_micros(gpu_model=demand.gpu_model)
    d = contract_demand_quote(provider_user=provider_user, demand=demand)
    return AdvanceApplication.objects.create(
        provider=provider_user,
        gpu_model=demand.gpu_model,
        gpu_count=demand.gpu_count,
        node=node,
        unit_cost_micros=unit,
        requested_micros=unit * demand.gpu_count,
        status=ApplicationStatus.OFFERED if d.offered else ApplicationStatus.DECLINED,
        offered_gpu_count=d.count,
        principal_micros=d.principal_micros,
        fee_micros=d.fee_micros,
        withhold_bps=d.withhold_bps,
        expected_payoff_months=d.expected_payoff_months,
        min_progress_micros=d.min_progress_micros,
        decline_reasons=d.reasons,
        inputs=d.inputs,
        arithmetic=d.arithmetic,
        rules_version=CONTRACT_RULES_VERSION,
        demand=demand,
        decided_at=None if d.offered else timezone.now(),
    )


def demand_award(*, application: AdvanceApplication) -> None:
    """Staff approved a contract-backed offer: its demand is awarded to the provider (inside the approval)."""
    demand = ContractDemand.objects.select_for_update().get(applications=application)
    if demand.status != ContractDemandStatus.OPEN:
        raise Conflict(f"demand {demand.pk} is {demand.status}; another offer was approved")
    demand.status = ContractDemandStatus.AWARDED
    demand.awarded_to = application.provider
    demand.save(update_fields=["status", "awarded_to"])


def demand_start_deadline(*, advance: Advance, now: datetime) -> None:
    """At disbursement: the delivery deadline starts; minimum progress waits for delivery."""
    demand = ContractDemand.objects.select_for_update().filter(applications=advance.application_id).first()
    if demand is None or demand.status != ContractDemandStatus.AWARDED:
        return
    demand.deadline_at = now + timedelta(days=demand.delivery_days)
    demand.save(update_fields=["deadline_at"])
    advance.window_start = None


def _free_gpus(node: Node, now: datetime) -> int:
    held = (
        ReservedContract.objects.filter(
            node=node, status=ReservedContractStatus.ACTIVE, starts_at__lte=now, ends_at__gt=now
        ).aggregate(s=Sum("gpu_count"))["s"]
        or 0
    )
    return node.gpu_count - held


def _deliver(demand: ContractDemand, advance: Advance, node: Node, now: datetime) -> bool:
    """Start the customer's contract on `node` (month 1 charged: repayment flows to the lenders)."""
    from financing.services.advances import _event, collateral_tag
    from financing.services.reserved import reserved_contract_open

    try:
        with transaction.atomic():
            contract = reserved_contract_open(
                customer_user=demand.customer,
                node=node,
                gpu_model=demand.gpu_model,
                gpu_count=demand.gpu_count,
                term_months=demand.term_months,
                list_price_micros=demand.list_price_micros,
                starts_at=now,
            )
    except InsufficientFunds:
        demand.status, demand.status_note = ContractDemandStatus.RELEASED, "the customer could not pay the first month"
        demand.save(update_fields=["status", "status_note"])
        advance.window_start, advance.window_repaid_base = now, advance.repaid_micros
        advance.save(update_fields=["window_start", "window_repaid_base"])
        _event(
            advance,
            "contract_lapsed",
            f"Demand #{demand.pk}: the customer could not pay month 1; the advance "
            "repays from the node's earnings like any advance.",
        )
        return False
    demand.status, demand.contract = ContractDemandStatus.DELIVERED, contract
    demand.save(update_fields=["status", "contract"])
    advance.refresh_from_db()
    advance.node, advance.window_start, advance.window_repaid_base = node, now, advance.repaid_micros
    advance.save(update_fields=["node", "window_start", "window_repaid_base"])
    collateral_tag(advance=advance)
    _event(
        advance,
        "delivered",
        f"Delivered on node {node.name}: reserved contract #{contract.pk} started ({demand.term_months} months at "
        f"{format_usd(micros=demand.monthly_micros)}); month 1 paid, {format_usd(micros=advance.repaid_micros)} "
        "repaid so far.",
        contract_id=contract.pk,
        node_id=node.pk,
    )
    return True


def demand_deliver_on_node(*, node_id: int, now: datetime | None = None) -> list[ContractDemand]:
    """A node of the provider was verified: deliver the awarded, disbursed demand it can hold (oldest first)."""
    now = now or timezone.now()
    delivered = []
    with transaction.atomic():
        node = Node.objects.select_for_update().select_related("provider__user").filter(pk=node_id).first()
        if node is None or not node.verified:
            return []
        demands = ContractDemand.objects.select_for_update().filter(
            status=ContractDemandStatus.AWARDED,
            awarded_to=node.provider.user,
            gpu_model_id=node.gpu_model_id,
            deadline_at__isnull=False,
        )
        for demand in demands.select_related("customer", "gpu_model").order_by("deadline_at", "pk"):
            advance = demand_advance(demand=demand)
            if advance is None or advance.status not in OPEN_ADVANCE_STATUSES:
                continue
            if demand.gpu_count <= _free_gpus(node, now) and _deliver(demand, advance, node, now):
                delivered.append(demand)
    return delivered


def on_node_verified(sender: object, *, node_id: int, **kwargs: object) -> None:
    """marketplace's `node_verified` receiver (connected in apps.py)."""
    demand_deliver_on_node(node_id=node_id)


def _recall(advance: Advance, demand: ContractDemand, now: datetime) -> None:
    """Deadline missed: take what the provider's payable holds, then delinquent (other nodes) or written down."""
    from financing.services.advances import _apply_repayment, _event, _set_defaulted, _set_delinquent

    payable = account_get(kind=AccountKind.PROVIDER_PAYABLE, user=advance.provider)
    payable.refresh_from_db(fields=["balance"])
    amount = min(max(payable.balance, 0), advance.remaining_micros)
    if amount > 0:
        key = f"advance-recall:{advance.pk}"
        per_lender = _apply_repayment(
            advance=advance, amount=amount, kind=RepaymentKind.RECALL, source_key=key, lease_ref=None
        )
        legs: list[tuple[Account, int]] = [(payable, -amount)]
        legs += [
            (account_get(kind=AccountKind.LENDER_RECEIVABLE, user=User(pk=lender_id)), per_lender[lender_id])
            for lender_id in sorted(per_lender)
        ]
        ledger_transfer(
            key=key,
            kind="advance_recall",
            legs=legs,
            memo=f"Advance {advance.pk} recalled",
            metadata={"advance_id": advance.pk},
        )
        _event(advance, "recalled", f"Recalled {format_usd(micros=amount)} from the provider's balance.")
    if advance.status not in OPEN_ADVANCE_STATUSES:
        return  # the recall repaid it in full
    reason = f"demand #{demand.pk} not delivered by {demand.deadline_at:%Y-%m-%d}"
    others = Node.objects.filter(provider__user=advance.provider, verified=True).exists()
    if others:
        advance.window_start, advance.window_repaid_base = now, advance.repaid_micros
        advance.save(update_fields=["window_start", "window_repaid_base"])
        _set_delinquent(advance, f"{reason}; recovered from the earnings of your other nodes")
    else:
        _set_defaulted(advance, f"{reason}, and no other node to recover it from")


def demands_review(*, now: datetime | None = None) -> int:
    """Daily: deliver what verified nodes can hold (catch-up), release demand past its deadline and recall its
    advance. Returns how many demands were released."""
    now = now or timezone.now()
    awarded = ContractDemand.objects.filter(status=ContractDemandStatus.AWARDED, deadline_at__isnull=False)
    for node_id in Node.objects.filter(
        verified=True, provider__user__in=awarded.values("awarded_to"), gpu_model__in=awarded.values("gpu_model")
    ).values_list("pk", flat=True):
        demand_deliver_on_node(node_id=node_id, now=now)
    released = 0
    for pk in awarded.filter(deadline_at__lt=now).order_by("pk").values_list("pk", flat=True):
        with transaction.atomic():
            demand = ContractDemand.objects.select_for_update().get(pk=pk)
            if demand.status != ContractDemandStatus.AWARDED:
                continue
            demand.status, demand.status_note = ContractDemandStatus.RELEASED, "not delivered by the deadline"
            demand.save(update_fields=["status", "status_note"])
            advance = demand_advance(demand=demand)
            if advance is not None and advance.status in OPEN_ADVANCE_STATUSES:
                locked = Advance.objects.select_for_update(no_key=True).get(pk=advance.pk)
                _recall(locked, demand, now)
            released += 1
    return released
