"""Advance applications: a provider asks to finance GPUs; underwriting answers with an offer or reasons.

`advance_application_submit` validates everything first (unknown model, count < 1 or above MAX_GPUS, an amount
beyond MAX_PRINCIPAL_MICROS, someone else's node or assessment → ValidationFailed / NotFound, nothing saved),
runs the rules of services/underwriting.py and stores the application with its offer or its decline
reasons, inputs and arithmetic. Staff then approve (an Advance opens for lenders, automatic lenders fund it at
once) or reject.

From a fleet assessment: the option's model, `count` GPUs (default: the GPUs to replace, at most MAX_GPUS) and an
optional node or site; a farm with more GPUs to replace is financed in several applications, each underwritten
on what the earlier ones did not already rely on. `financing_upgrade_quote` is the same underwriting for the
assessment's upgrade path (registered as marketplace's upgrade quoter in apps.py), so the payback shown there is
the expected payoff an application with the same inputs is offered.
"""

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from common.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from common.money import MICROS, format_usd
from financing.models import (
    Advance,
    AdvanceApplication,
    AdvanceEvent,
    AdvanceStatus,
    ApplicationStatus,
    DisburseTo,
    ReservedContract,
    ReservedContractStatus,
)
from financing.selectors.underwriting import underwriting_inputs
from financing.services.underwriting import RULES_VERSION, underwrite
from marketplace.models import FleetAssessment, GPUModel, Node, Provider
from marketplace.services.earnings import UpgradeQuote

MAX_GPUS = 256
MAX_PRINCIPAL_MICROS = 2_000_000 * MICROS  # $2M: no offer is ever larger


def unit_cost_micros(*, gpu_model: GPUModel) -> int:
    """What one GPU costs: the catalog's upgrade price (street/used) when it has one, else the launch price."""
    from marketplace.catalog_data import UPGRADE_OPTIONS

    for option in UPGRADE_OPTIONS:
        if option.slug == gpu_model.slug:
            return option.unit_cost_usd * MICROS
    return (gpu_model.launch_price_usd or 0) * MICROS


def advance_application_submit(  # noqa: C901 — to split into named steps
    *,
    provider_user: User,
    gpu_model_slug: str | None = None,
    count: int | None = None,
    node_id: int | None = None,
    assessment_id: int | None = None,
    option_slug: str | None = None,
) -> AdvanceApplication:
    """Apply for an advance, from a model and count or from a fleet assessment's upgrade path."""
    provider = Provider.objects.filter(user=provider_user).first()
    if provider is None:
        raise PermissionDenied("Only provider accounts may apply for financing.")
    assessment = None
    if assessment_id is not None:
        assessment = FleetAssessment.objects.filter(pk=assessment_id, provider=provider).first()
        if assessment is None:
            raise NotFound(f"No fleet assessment {assessment_id} of yours.")
        path = assessment.report.get("upgrade_path") or {}
        options = path.get("options") or []
        if not options:
            raise ValidationFailed("This assessment has no upgrade path: every matched GPU already qualifies.")
        wanted = option_slug or gpu_model_slug
        option = next((o for o in options if o.get("slug") == wanted), None) if wanted else options[0]
        if option is None:
            raise ValidationFailed(
                f"{wanted!r} is not an upgrade option of this assessment; choose one of "
                + ", ".join(o["slug"] for o in options)
            )
        gpu_model_slug = option["slug"]
        count = count if count is not None else min(int(option["replaces_gpus"]), MAX_GPUS)
    if not gpu_model_slug:
        raise ValidationFailed(
            "gpu_model: give a catalog slug (or an assessment).", details={"gpu_model": ["Required."]}
        )
    gpu_model = GPUModel.objects.filter(slug=gpu_model_slug).first()
    if gpu_model is None:
        raise ValidationFailed(
            f"gpu_model: unknown GPU model {gpu_model_slug!r}.", details={"gpu_model": ["Unknown catalog slug."]}
        )
    if count is None or isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValidationFailed("count: must be a whole number of at least 1.", details={"count": ["At least 1."]})
    if count > MAX_GPUS:
        raise ValidationFailed(
            f"count: at most {MAX_GPUS} GPUs per application; finance a larger farm in several applications.",
            details={"count": ["Too many."]},
        )
    node = None
    if node_id is not None:
        node = Node.objects.filter(pk=node_id, provider=provider).first()
        if node is None:
            raise NotFound(f"No node {node_id} of yours.")
    unit = unit_cost_micros(gpu_model=gpu_model)
    if unit <= 0:
        raise ValidationFailed(f"gpu_model: {gpu_model.name} has no known price, so it cannot be financed.")
    requested = unit * count
    if requested > MAX_PRINCIPAL_MICROS:
        raise ValidationFailed(
            f"{count} × {gpu_model.name} costs {format_usd(micros=requested)}, beyond any possible offer "
            f"(at most {format_usd(micros=MAX_PRINCIPAL_MICROS)} per advance).",
            details={"count": ["Amount beyond any possible offer."]},
        )
    inputs = underwriting_inputs(provider_user=provider_user, gpu_model=gpu_model, node=node)
    decision = underwrite(inputs=inputs, tier=gpu_model.tier, count=count, unit_cost_micros=unit)
    contract = (
        ReservedContract.objects.filter(pk__in=[c.contract_id for c in inputs.contracts]).order_by("pk").first()
        if inputs.contracts
        else None
    )
    with transaction.atomic():
        return AdvanceApplication.objects.create(
            provider=provider_user,
            gpu_model=gpu_model,
            gpu_count=count,
            node=node,
            assessment=assessment,
            unit_cost_micros=unit,
            requested_micros=requested,
            status=ApplicationStatus.OFFERED if decision.offered else ApplicationStatus.DECLINED,
            offered_gpu_count=decision.count,
            principal_micros=decision.principal_micros,
            fee_micros=decision.fee_micros,
            withhold_bps=decision.withhold_bps,
            expected_payoff_months=decision.expected_payoff_months,
            min_progress_micros=decision.min_progress_micros,
            decline_reasons=decision.reasons,
            inputs=decision.inputs,
            arithmetic=decision.arithmetic,
            rules_version=RULES_VERSION,
            reserved_contract=contract,
            decided_at=timezone.now() if not decision.offered else None,
        )


def financing_upgrade_quote(
    *, provider: Provider, gpu_model: GPUModel, count: int, unit_cost_micros: int
) -> UpgradeQuote:
    """What an application for one batch (at most MAX_GPUS) of `count` GPUs would be offered now (saves nothing)."""
    batch = max(1, min(count, MAX_GPUS))
    inputs = underwriting_inputs(provider_user=provider.user, gpu_model=gpu_model, node=None)
    d = underwrite(inputs=inputs, tier=gpu_model.tier, count=batch, unit_cost_micros=unit_cost_micros)
    return UpgradeQuote(
        count=batch,
        monthly_share_per_gpu_micros=d.per_gpu_monthly_micros,
        utilisation=d.utilisation,
        offered=d.offered,
        offered_count=d.count,
        principal_micros=d.principal_micros,
        fee_micros=d.fee_micros,
        withhold_bps=d.withhold_bps,
        payoff_months=d.expected_payoff_months,
        reasons=list(d.reasons),
    )


def advance_application_approve(
    *, staff_user: User, application_id: int, disburse_to: str = DisburseTo.PROVIDER, vendor_name: str = ""
) -> Advance:
    """Staff approve an offer: the advance opens for funding and automatic lenders fund it pro rata."""
    if not staff_user.is_staff:
        raise PermissionDenied("Staff only.")
    if disburse_to not in DisburseTo.values:
        raise ValidationFailed("disburse_to: 'provider' or 'vendor'.")
    if disburse_to == DisburseTo.VENDOR and not vendor_name.strip():
        raise ValidationFailed("vendor_name: name the hardware vendor the principal is paid to.")
    with transaction.atomic():
        app = AdvanceApplication.objects.select_for_update(no_key=True).filter(pk=application_id).first()
        if app is None:
            raise NotFound(f"No application {application_id}.")
        if app.status != ApplicationStatus.OFFERED:
            raise Conflict(f"application {application_id} is {app.status}; only an offer can be approved")
        now = timezone.now()
        app.status = ApplicationStatus.APPROVED
        app.decided_at = now
        app.save(update_fields=["status", "decided_at"])
        if app.demand_id:
            from financing.services.demand import demand_award

            demand_award(application=app)
        assert app.expected_payoff_months is not None
        advance = Advance.objects.create(
            application=app,
            provider=app.provider,
            gpu_model=app.gpu_model,
            gpu_count=app.offered_gpu_count,
            node=app.node,
            principal_micros=app.principal_micros,
            fee_micros=app.fee_micros,
            base_withhold_bps=app.withhold_bps,
            withhold_bps=app.withhold_bps,
            expected_payoff_months=app.expected_payoff_months,
            min_progress_micros=app.min_progress_micros,
            status=AdvanceStatus.FUNDING,
            disburse_to=disburse_to,
            vendor_name=vendor_name.strip()[:200],
            approved_at=now,
        )
        AdvanceEvent.objects.create(
            advance=advance,
            kind="approved",
            message=f"Approved by staff; open for funding ({format_usd(micros=advance.principal_micros)}).",
            actor=staff_user,
            created_at=now,
        )
        from financing.services.lenders import advance_fund_auto

        advance_fund_auto(advance_id=advance.pk)
        advance.refresh_from_db()
        return advance


def advance_application_reject(*, staff_user: User, application_id: int, note: str = "") -> AdvanceApplication:
    if not staff_user.is_staff:
        raise PermissionDenied("Staff only.")
    with transaction.atomic():
        app = AdvanceApplication.objects.select_for_update(no_key=True).filter(pk=application_id).first()
        if app is None:
            raise NotFound(f"No application {application_id}.")
        if app.status != ApplicationStatus.OFFERED:
            raise Conflict(f"application {application_id} is {app.status}; only an offer can be rejected")
        app.status = ApplicationStatus.REJECTED
        app.staff_note = note[:500]
        app.decided_at = timezone.now()
        app.save(update_fields=["status", "staff_note", "decided_at"])
        return app


def reserved_contracts_active_exist(*, provider_user: User) -> bool:
    return ReservedContract.objects.filter(provider=provider_user, status=ReservedContractStatus.ACTIVE).exists()
