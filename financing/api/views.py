"""Financing over the API: provider applications and advances, lender signup/capital/preferences/funding/portfolio,
staff approval and advance actions. Every view checks its role; reads return only what the caller may see."""

from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import IsCustomer, IsProvider, IsStaff
from common.api_schema import error_responses
from common.errors import NotFound, PermissionDenied, ValidationFailed
from common.money import from_micros
from common.numbers import money_field_parse
from financing.models import (
    Advance,
    AdvanceApplication,
    AdvanceFunding,
    ContractDemand,
    LenderPayout,
    LenderPreference,
)
from financing.selectors.advances import (
    advance_list_for_provider,
    advance_projection,
    advance_visible_to,
    advances_all,
    application_get,
    application_list,
    applications_pending,
)
from financing.selectors.demand import demand_for_customer, demand_visible_to_provider
from financing.selectors.lenders import (
    advances_funded_by_lender,
    advances_offered_to_lender,
    lender_balances,
    lender_portfolio,
    lender_preference_get,
)
from financing.selectors.stress import lender_portfolio_stress
from financing.services.advances import advance_payoff_early, advance_staff_action
from financing.services.applications import (
    advance_application_approve,
    advance_application_reject,
    advance_application_submit,
)
from financing.services.demand import (
    contract_demand_cancel,
    contract_demand_offer,
    contract_demand_post,
    contract_demand_quote,
)
from financing.services.lender_payouts import lender_payout_onboard
from financing.services.lenders import (
    advance_fund,
    lender_capital_commit,
    lender_preference_set,
    lender_signup,
)


class IsLender(permissions.BasePermission):
    message = "Only lender accounts may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated and hasattr(request.user, "lender"))


def _dollars(micros: int) -> str:
    return format(from_micros(micros=micros), "f")


def _user(request: Request) -> User:
    assert isinstance(request.user, User)
    return request.user


def _field(request: Request, name: str) -> Any:
    data = request.data
    return data.get(name) if isinstance(data, dict) else None


def dollars_parse(value: Any, *, field: str, required: bool = True) -> int | None:
    """A dollar amount ("5000.00") → micros; > 0, at most 2 decimals; else 400 naming the field.

    The one money rule (`common.numbers.money_parse`): NaN, Infinity and overflowing exponents are refused."""
    return money_field_parse(value, field=field, required=required, places=2, positive=True)


# --- output ------------------------------------------------------------------------------------------------


@extend_schema_serializer(component_name="FinancingOfferOut")  # broker.api.offers has an OfferOut too
class OfferOut(serializers.Serializer[dict[str, Any]]):
    gpu_count = serializers.IntegerField()
    principal = serializers.CharField()
    fee = serializers.CharField()
    withhold_rate = serializers.CharField(help_text="Share of each settlement's provider share, e.g. '0.20'")
    expected_payoff_months = serializers.CharField()
    minimum_progress_per_60_days = serializers.CharField()


class ApplicationOut(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField()
    status = serializers.CharField()
    gpu_model = serializers.CharField()
    count = serializers.IntegerField()
    node = serializers.IntegerField(allow_null=True)
    assessment = serializers.IntegerField(allow_null=True)
    unit_cost = serializers.CharField()
    requested = serializers.CharField()
    offer = OfferOut(allow_null=True)
    decline_reasons = serializers.ListField(child=serializers.CharField())
    inputs = serializers.JSONField()
    arithmetic = serializers.ListField(child=serializers.CharField())
    rules_version = serializers.CharField()
    advance = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()


def application_out(app: AdvanceApplication) -> dict[str, Any]:
    offered = app.principal_micros > 0
    advance = Advance.objects.filter(application=app).values_list("pk", flat=True).first()
    return {
        "id": app.pk,
        "status": app.status,
        "gpu_model": app.gpu_model.slug,
        "count": app.gpu_count,
        "node": app.node_id,
        "assessment": app.assessment_id,
        "unit_cost": _dollars(app.unit_cost_micros),
        "requested": _dollars(app.requested_micros),
        "offer": {
            "gpu_count": app.offered_gpu_count,
            "principal": _dollars(app.principal_micros),
            "fee": _dollars(app.fee_micros),
            "withhold_rate": str(Decimal(app.withhold_bps) / 10_000),
            "expected_payoff_months": str(app.expected_payoff_months),
            "minimum_progress_per_60_days": _dollars(app.min_progress_micros),
        }
        if offered
        else None,
        "decline_reasons": app.decline_reasons,
        "inputs": app.inputs,
        "arithmetic": app.arithmetic,
        "rules_version": app.rules_version,
        "advance": advance,
        "created_at": app.created_at,
    }


class AdvanceOut(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField()
    status = serializers.CharField()
    gpu_model = serializers.CharField()
    gpu_count = serializers.IntegerField()
    principal = serializers.CharField()
    fee = serializers.CharField()
    withhold_rate = serializers.CharField()
    funded = serializers.CharField()
    repaid = serializers.CharField()
    remaining = serializers.CharField()
    written_off = serializers.CharField()
    expected_payoff_months = serializers.CharField()
    minimum_progress_per_60_days = serializers.CharField()
    projected_payoff_date = serializers.DateTimeField(allow_null=True)
    disbursed_at = serializers.DateTimeField(allow_null=True)
    disbursed_to = serializers.CharField()
    application = serializers.IntegerField()
    inputs = serializers.JSONField()
    arithmetic = serializers.ListField(child=serializers.CharField())
    events = serializers.ListField(child=serializers.DictField())
    your_share = serializers.DictField(allow_null=True, help_text="For a funding lender: its share and receipts")
    contract = serializers.DictField(
        allow_null=True, help_text="A contract-backed advance: the customer contract behind it and its delivery"
    )


def advance_out(advance: Advance, *, viewer: User | None = None) -> dict[str, Any]:
    share = None
    if viewer is not None:
        f = AdvanceFunding.objects.filter(advance=advance, lender=viewer).first()
        if f is not None:
            share = {"funded": _dollars(f.amount_micros), "received": _dollars(f.received_micros)}
    return {
        "id": advance.pk,
        "status": advance.status,
        "gpu_model": advance.gpu_model.slug,
        "gpu_count": advance.gpu_count,
        "principal": _dollars(advance.principal_micros),
        "fee": _dollars(advance.fee_micros),
        "withhold_rate": str(Decimal(advance.withhold_bps) / 10_000),
        "funded": _dollars(advance.funded_micros),
        "repaid": _dollars(advance.repaid_micros),
        "remaining": _dollars(advance.remaining_micros),
        "written_off": _dollars(advance.written_off_micros),
        "expected_payoff_months": str(advance.expected_payoff_months),
        "minimum_progress_per_60_days": _dollars(advance.min_progress_micros),
        "projected_payoff_date": advance_projection(advance=advance),
        "disbursed_at": advance.disbursed_at,
        "disbursed_to": advance.vendor_name if advance.disburse_to == "vendor" else "provider",
        "application": advance.application_id,
        "inputs": advance.application.inputs,
        "arithmetic": advance.application.arithmetic,
        "events": [
            {"at": e.created_at.isoformat(), "kind": e.kind, "message": e.message} for e in advance.events.all()
        ],
        "your_share": share,
        "contract": contract_behind(advance),
    }


def contract_behind(advance: Advance) -> dict[str, Any] | None:
    """The customer contract a contract-backed advance is priced against (the customer shown by number only)."""
    demand = advance.application.demand
    if demand is None:
        return None
    contract = demand.contract
    return {
        "demand": demand.pk,
        "customer": f"customer #{demand.customer_id}",
        "terms": f"{demand.gpu_count} × {demand.gpu_model.name}, {demand.term_months} months",
        "monthly": _dollars(demand.monthly_micros),
        "committed": _dollars(demand.receivable_micros),
        "status": demand.status,
        "delivery_deadline": demand.deadline_at.isoformat() if demand.deadline_at else None,
        "contract": contract.pk if contract else None,
        "months_paid": contract.months_paid if contract else 0,
        "customer_credit_at_underwriting": {
            k: advance.application.inputs.get(k)
            for k in ("customer_paid_180d", "customer_lapsed_contracts", "customer_prepaid_balance", "credit_haircut")
        },
    }


# --- provider ------------------------------------------------------------------------------------------------


class ApplicationIn(serializers.Serializer[dict[str, Any]]):
    gpu_model = serializers.CharField(required=False, help_text="Catalog slug of the GPU to buy")
    count = serializers.IntegerField(required=False, min_value=1, max_value=256, help_text="How many (1–256)")
    node = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=2**62, help_text="Your node or site it goes in"
    )
    assessment = serializers.IntegerField(
        required=False, min_value=1, max_value=2**62, help_text="Apply from this fleet assessment's upgrade path"
    )
    option = serializers.CharField(required=False, help_text="Upgrade option slug of the assessment (default: first)")


class ApplicationListCreateView(APIView):
    permission_classes = [IsProvider]

    @extend_schema(responses={200: ApplicationOut(many=True), **error_responses(401, 403)})
    def get(self, request: Request) -> Response:
        return Response([application_out(a) for a in application_list(provider_user=_user(request))])

    @extend_schema(
        request=ApplicationIn,
        responses={201: ApplicationOut, **error_responses(400, 401, 403, 404)},
        description="Apply for an upgrade advance; the answer carries the offer or the decline reasons, with the "
        "underwriting inputs and arithmetic.",
    )
    def post(self, request: Request) -> Response:
        data = ApplicationIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        if "assessment" not in v and ("gpu_model" not in v or "count" not in v):
            raise ValidationFailed("give gpu_model and count, or an assessment", details={"gpu_model": ["Required."]})
        app = advance_application_submit(
            provider_user=_user(request),
            gpu_model_slug=v.get("gpu_model"),
            count=v.get("count"),
            node_id=v.get("node"),
            assessment_id=v.get("assessment"),
            option_slug=v.get("option"),
        )
        return Response(application_out(app), status=status.HTTP_201_CREATED)


class ApplicationDetailView(APIView):
    permission_classes = [IsProvider]

    @extend_schema(responses={200: ApplicationOut, **error_responses(401, 403, 404)})
    def get(self, request: Request, application_id: int) -> Response:
        app = application_get(provider_user=_user(request), application_id=application_id)
        if app is None:
            raise NotFound(f"No application {application_id} of yours.")
        return Response(application_out(app))


class ProviderAdvanceListView(APIView):
    permission_classes = [IsProvider]

    @extend_schema(responses={200: AdvanceOut(many=True), **error_responses(401, 403)})
    def get(self, request: Request) -> Response:
        return Response([advance_out(a) for a in advance_list_for_provider(provider_user=_user(request))])


class AdvanceDetailView(APIView):
    """An advance: its provider, its funders, a lender it is offered to, or staff."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses={200: AdvanceOut, **error_responses(401, 404)})
    def get(self, request: Request, advance_id: int) -> Response:
        advance = advance_visible_to(user=_user(request), advance_id=advance_id)
        if advance is None:
            raise NotFound(f"No advance {advance_id} visible to you.")
        return Response(advance_out(advance, viewer=_user(request)))


class PayoffIn(serializers.Serializer[dict[str, Any]]):
    amount = serializers.CharField(required=False, help_text="Dollars; default: everything remaining")


class AdvancePayoffView(APIView):
    permission_classes = [IsProvider]

    @extend_schema(request=PayoffIn, responses={200: AdvanceOut, **error_responses(400, 401, 402, 403, 404, 409)})
    def post(self, request: Request, advance_id: int) -> Response:
        amount = dollars_parse(_field(request, "amount"), field="amount", required=False)
        advance = advance_payoff_early(provider_user=_user(request), advance_id=advance_id, amount_micros=amount)
        return Response(advance_out(advance))


# --- lenders ------------------------------------------------------------------------------------------------


class LenderSignupIn(serializers.Serializer[dict[str, Any]]):
    username = serializers.CharField(max_length=150)
    email = serializers.EmailField()
    password = serializers.CharField(min_length=8, write_only=True)
    name = serializers.CharField(max_length=200)


class LenderSignupOut(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField()
    username = serializers.CharField()


class BalancesOut(serializers.Serializer[dict[str, Any]]):
    capital = serializers.CharField(help_text="Dollars committed and not disbursed")
    pledged = serializers.CharField(help_text="Pledged to advances still being funded")
    available = serializers.CharField(help_text="Capital minus pledges: what can still be funded")
    received = serializers.CharField(help_text="Repayments received and not reinvested")


class CapitalOut(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField()
    status = serializers.CharField()
    amount = serializers.CharField()
    gateway = serializers.CharField()


class StressOut(serializers.Serializer[dict[str, Any]]):
    stressed_loss = serializers.CharField(help_text="What the open advances would lose under the stress")
    stressed_return_pct = serializers.CharField(allow_null=True)
    advances = serializers.ListField(child=serializers.DictField())


class PortfolioOut(serializers.Serializer[dict[str, Any]]):
    funded = serializers.CharField()
    repaid = serializers.CharField()
    outstanding = serializers.CharField()
    written_off = serializers.CharField()
    realised_gain = serializers.CharField(help_text="Received minus principal on closed advances")
    delinquent = serializers.IntegerField()
    defaulted = serializers.IntegerField()
    advances = AdvanceOut(many=True)
    balances = BalancesOut()
    stress = StressOut(help_text="The portfolio under the stress of financing/selectors/stress.py")


class LenderSignupView(APIView):
    permission_classes = [permissions.AllowAny]

    @extend_schema(request=LenderSignupIn, responses={201: LenderSignupOut, **error_responses(400, 409)})
    def post(self, request: Request) -> Response:
        data = LenderSignupIn(data=request.data)
        data.is_valid(raise_exception=True)
        user = lender_signup(**data.validated_data)
        return Response({"id": user.pk, "username": user.username}, status=status.HTTP_201_CREATED)


class PreferenceIO(serializers.Serializer[dict[str, Any]]):
    mode = serializers.ChoiceField(choices=["auto", "hand_picked"])
    max_per_advance = serializers.CharField(help_text='Dollars; "0" for no cap')
    tiers = serializers.ListField(child=serializers.CharField(), help_text="Empty for any AI-grade tier")
    max_payoff_months = serializers.IntegerField(min_value=1, max_value=60)


def _pref_out(pref: LenderPreference) -> dict[str, Any]:
    return {
        "mode": pref.mode,
        "max_per_advance": _dollars(pref.max_per_advance_micros),
        "tiers": pref.tiers,
        "max_payoff_months": pref.max_payoff_months,
    }


class LenderPreferenceView(APIView):
    permission_classes = [IsLender]

    @extend_schema(responses={200: PreferenceIO, **error_responses(401, 403)})
    def get(self, request: Request) -> Response:
        return Response(_pref_out(lender_preference_get(lender_user=_user(request))))

    @extend_schema(request=PreferenceIO, responses={200: PreferenceIO, **error_responses(400, 401, 403)})
    def put(self, request: Request) -> Response:
        data = PreferenceIO(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        cap = (
            0
            if str(v["max_per_advance"]).strip() in ("0", "0.00")
            else dollars_parse(v["max_per_advance"], field="max_per_advance")
        )
        pref = lender_preference_set(
            lender_user=_user(request),
            mode=v["mode"],
            max_per_advance_micros=cap or 0,
            tiers=v["tiers"],
            max_payoff_months=v["max_payoff_months"],
        )
        return Response(_pref_out(pref))


class AmountIn(serializers.Serializer[dict[str, Any]]):
    amount = serializers.CharField(help_text='Dollars, e.g. "5000.00"')


class LenderCapitalView(APIView):
    permission_classes = [IsLender]

    @extend_schema(responses={200: BalancesOut, **error_responses(401, 403)})
    def get(self, request: Request) -> Response:
        return Response({k: _dollars(v) for k, v in lender_balances(lender_user=_user(request)).items()})

    @extend_schema(request=AmountIn, responses={201: CapitalOut, **error_responses(400, 401, 403)})
    def post(self, request: Request) -> Response:
        amount = dollars_parse(_field(request, "amount"), field="amount")
        assert amount is not None
        c = lender_capital_commit(lender_user=_user(request), amount_micros=amount)
        body = {"id": c.pk, "status": c.status, "amount": _dollars(c.amount_micros), "gateway": c.gateway}
        return Response(body, status=status.HTTP_201_CREATED)


class LenderOffersView(APIView):
    permission_classes = [IsLender]

    @extend_schema(responses={200: AdvanceOut(many=True), **error_responses(401, 403)})
    def get(self, request: Request) -> Response:
        return Response([advance_out(a) for a in advances_offered_to_lender(lender_user=_user(request))])


class LenderFundView(APIView):
    permission_classes = [IsLender]

    @extend_schema(request=PayoffIn, responses={200: AdvanceOut, **error_responses(400, 401, 403, 404, 409)})
    def post(self, request: Request, advance_id: int) -> Response:
        amount = dollars_parse(_field(request, "amount"), field="amount", required=False)
        advance = advance_fund(lender_user=_user(request), advance_id=advance_id, amount_micros=amount)
        return Response(advance_out(advance, viewer=_user(request)))


class LenderPortfolioView(APIView):
    permission_classes = [IsLender]

    @extend_schema(responses={200: PortfolioOut, **error_responses(401, 403)})
    def get(self, request: Request) -> Response:
        user = _user(request)
        p = lender_portfolio(lender_user=user)
        return Response(
            {
                "funded": _dollars(p["funded"]),
                "repaid": _dollars(p["repaid"]),
                "outstanding": _dollars(p["outstanding"]),
                "written_off": _dollars(p["written_off"]),
                "realised_gain": _dollars(p["realised_gain"])
                if p["realised_gain"] >= 0
                else "-" + _dollars(-p["realised_gain"]),
                "delinquent": p["delinquent"],
                "defaulted": p["defaulted"],
                "advances": [advance_out(a, viewer=user) for a in advances_funded_by_lender(lender_user=user)],
                "balances": {k: _dollars(v) for k, v in lender_balances(lender_user=user).items()},
                "stress": _stress_out(lender_portfolio_stress(lender_user=user)),
            }
        )


def _stress_out(stress: dict[str, Any]) -> dict[str, Any]:
    return {
        "stressed_loss": _dollars(stress["stressed_loss"]),
        "stressed_return_pct": None if stress["stressed_return_pct"] is None else str(stress["stressed_return_pct"]),
        "advances": [
            {
                "advance": r.advance_id,
                "kind": r.kind,
                "remaining": _dollars(r.remaining_micros),
                "stressed_loss": _dollars(r.stressed_loss_micros),
            }
            for r in stress["rows"]
        ],
    }


# --- staff ------------------------------------------------------------------------------------------------


class StaffApplicationsView(APIView):
    permission_classes = [IsStaff]

    @extend_schema(responses={200: ApplicationOut(many=True), **error_responses(401, 403)})
    def get(self, request: Request) -> Response:
        return Response([application_out(a) for a in applications_pending()])


class ApproveIn(serializers.Serializer[dict[str, Any]]):
    decision = serializers.ChoiceField(choices=["approve", "reject"])
    disburse_to = serializers.ChoiceField(choices=["provider", "vendor"], required=False, default="provider")
    vendor_name = serializers.CharField(required=False, allow_blank=True, default="")
    note = serializers.CharField(required=False, allow_blank=True, default="")


class StaffApplicationDecideView(APIView):
    permission_classes = [IsStaff]

    @extend_schema(request=ApproveIn, responses={200: ApplicationOut, **error_responses(400, 401, 403, 404, 409)})
    def post(self, request: Request, application_id: int) -> Response:
        data = ApproveIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        if v["decision"] == "approve":
            advance = advance_application_approve(
                staff_user=_user(request),
                application_id=application_id,
                disburse_to=v["disburse_to"],
                vendor_name=v["vendor_name"],
            )
            return Response(application_out(advance.application))
        app = advance_application_reject(staff_user=_user(request), application_id=application_id, note=v["note"])
        return Response(application_out(app))


class StaffAdvanceListView(APIView):
    permission_classes = [IsStaff]

    @extend_schema(responses={200: AdvanceOut(many=True), **error_responses(401, 403)})
    def get(self, request: Request) -> Response:
        return Response([advance_out(a) for a in advances_all(status=request.query_params.get("status"))])


class ActionIn(serializers.Serializer[dict[str, Any]]):
    action = serializers.ChoiceField(choices=["delinquent", "cure", "default", "review"])
    note = serializers.CharField(required=False, allow_blank=True, default="")


class StaffAdvanceActionView(APIView):
    permission_classes = [IsStaff]

    @extend_schema(request=ActionIn, responses={200: AdvanceOut, **error_responses(400, 401, 403, 404, 409)})
    def post(self, request: Request, advance_id: int) -> Response:
        data = ActionIn(data=request.data)
        data.is_valid(raise_exception=True)
        advance = advance_staff_action(
            staff_user=_user(request),
            advance_id=advance_id,
            action=data.validated_data["action"],
            note=data.validated_data["note"],
        )
        return Response(advance_out(advance))


# --- contract demand ------------------------------------------------------------------------------------------


class DemandQuoteOut(serializers.Serializer[dict[str, Any]]):
    offered = serializers.BooleanField()
    principal = serializers.CharField()
    fee = serializers.CharField()
    withhold_rate = serializers.CharField()
    expected_payoff_months = serializers.CharField(allow_null=True)
    reasons = serializers.ListField(child=serializers.CharField())
    arithmetic = serializers.ListField(child=serializers.CharField())


class DemandOut(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField()
    status = serializers.CharField()
    gpu_model = serializers.CharField()
    gpu_count = serializers.IntegerField()
    term_months = serializers.IntegerField()
    price_per_gpu_hour = serializers.CharField()
    monthly = serializers.CharField()
    committed = serializers.CharField(help_text="Monthly payment × term")
    delivery_days = serializers.IntegerField()
    deadline_at = serializers.DateTimeField(allow_null=True)
    contract = serializers.IntegerField(allow_null=True, help_text="The reserved contract once delivered")
    quote = DemandQuoteOut(allow_null=True, help_text="For a provider: the advance it would be offered to fulfil it")


def demand_out(demand: ContractDemand, *, quote: Any = None) -> dict[str, Any]:
    return {
        "id": demand.pk,
        "status": demand.status,
        "gpu_model": demand.gpu_model.slug,
        "gpu_count": demand.gpu_count,
        "term_months": demand.term_months,
        "price_per_gpu_hour": _dollars(demand.list_price_micros),
        "monthly": _dollars(demand.monthly_micros),
        "committed": _dollars(demand.receivable_micros),
        "delivery_days": demand.delivery_days,
        "deadline_at": demand.deadline_at,
        "contract": demand.contract_id,
        "quote": None
        if quote is None
        else {
            "offered": quote.offered,
            "principal": _dollars(quote.principal_micros),
            "fee": _dollars(quote.fee_micros),
            "withhold_rate": str(Decimal(quote.withhold_bps) / 10_000),
            "expected_payoff_months": None
            if quote.expected_payoff_months is None
            else str(quote.expected_payoff_months),
            "reasons": quote.reasons,
            "arithmetic": quote.arithmetic,
        },
    }


class DemandIn(serializers.Serializer[dict[str, Any]]):
    gpu_model = serializers.CharField(help_text="Catalog slug of an AI-grade model")
    count = serializers.IntegerField(min_value=1, max_value=256)
    term_months = serializers.IntegerField(min_value=3, max_value=36)
    price = serializers.CharField(help_text='Per GPU-hour, dollars, before the term discount, e.g. "0.30"')
    delivery_days = serializers.IntegerField(required=False, min_value=7, max_value=120, default=45)


def _demand_role(user: User) -> str:
    if user.is_staff:
        return "staff"
    if hasattr(user, "provider"):
        return "provider"
    if hasattr(user, "customer"):
        return "customer"
    raise PermissionDenied("Contract demand is for customers, providers and staff.")


def _demand_get(user: User, demand_id: int) -> ContractDemand:
    role = _demand_role(user)
    qs: Any = ContractDemand.objects.select_related("gpu_model", "customer")
    if role == "customer":
        qs = demand_for_customer(customer_user=user)
    elif role == "provider":
        qs = demand_visible_to_provider(provider_user=user)
    demand = qs.filter(pk=demand_id).first()
    if demand is None:
        raise NotFound(f"No demand {demand_id} visible to you.")
    return demand


class DemandListView(APIView):
    """Open contract demand. Customers post and see their own; providers see open demand (and what they were
    awarded) with the advance each would get; staff see all."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses={200: DemandOut(many=True), **error_responses(401, 403)})
    def get(self, request: Request) -> Response:
        user = _user(request)
        role = _demand_role(user)
        if role == "provider":
            rows = list(demand_visible_to_provider(provider_user=user)[:50])
            return Response([demand_out(d, quote=contract_demand_quote(provider_user=user, demand=d)) for d in rows])
        qs = demand_for_customer(customer_user=user) if role == "customer" else ContractDemand.objects.all()
        return Response([demand_out(d) for d in qs.select_related("gpu_model")[:200]])

    @extend_schema(request=DemandIn, responses={201: DemandOut, **error_responses(400, 401, 402, 403)})
    def post(self, request: Request) -> Response:
        user = _user(request)
        if _demand_role(user) != "customer":
            raise PermissionDenied("Only customers post contract demand.")
        data = DemandIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        price = dollars_parse(v["price"], field="price")
        assert price is not None
        demand = contract_demand_post(
            customer_user=user,
            gpu_model_slug=v["gpu_model"],
            gpu_count=v["count"],
            term_months=v["term_months"],
            price_micros=price,
            delivery_days=v["delivery_days"],
        )
        return Response(demand_out(demand), status=status.HTTP_201_CREATED)


class DemandDetailView(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses={200: DemandOut, **error_responses(401, 403, 404)})
    def get(self, request: Request, demand_id: int) -> Response:
        user = _user(request)
        demand = _demand_get(user, demand_id)
        quote = contract_demand_quote(provider_user=user, demand=demand) if hasattr(user, "provider") else None
        return Response(demand_out(demand, quote=quote))


class DemandOfferIn(serializers.Serializer[dict[str, Any]]):
    node = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=2**62, help_text="Your node or site it goes in"
    )


class DemandOfferView(APIView):
    permission_classes = [IsProvider]

    @extend_schema(request=DemandOfferIn, responses={201: ApplicationOut, **error_responses(400, 401, 403, 404)})
    def post(self, request: Request, demand_id: int) -> Response:
        data = DemandOfferIn(data=request.data)
        data.is_valid(raise_exception=True)
        app = contract_demand_offer(
            provider_user=_user(request), demand_id=demand_id, node_id=data.validated_data.get("node")
        )
        return Response(application_out(app), status=status.HTTP_201_CREATED)


class DemandCancelView(APIView):
    permission_classes = [IsCustomer]

    @extend_schema(request=None, responses={200: DemandOut, **error_responses(401, 403, 404, 409)})
    def post(self, request: Request, demand_id: int) -> Response:
        return Response(demand_out(contract_demand_cancel(customer_user=_user(request), demand_id=demand_id)))


# --- lender payouts ---------------------------------------------------------------------------------------------


class LenderPayoutOut(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField()
    period = serializers.DateField()
    amount = serializers.CharField()
    status = serializers.CharField()
    gateway = serializers.CharField()
    gateway_ref = serializers.CharField()
    failure_reason = serializers.CharField()


class LenderPayoutsView(APIView):
    permission_classes = [IsLender]

    @extend_schema(responses={200: LenderPayoutOut(many=True), **error_responses(401, 403)})
    def get(self, request: Request) -> Response:
        rows = LenderPayout.objects.filter(lender=_user(request)).order_by("-created_at", "-pk")[:200]
        return Response(
            [
                {
                    "id": p.pk,
                    "period": p.period,
                    "amount": _dollars(p.amount_micros),
                    "status": p.status,
                    "gateway": p.gateway,
                    "gateway_ref": p.gateway_ref,
                    "failure_reason": p.failure_reason,
                }
                for p in rows
            ]
        )


class LenderOnboardingOut(serializers.Serializer[dict[str, Any]]):
    url = serializers.CharField()


class LenderPayoutAccountView(APIView):
    permission_classes = [IsLender]

    @extend_schema(request=None, responses={200: LenderOnboardingOut, **error_responses(401, 403)})
    def post(self, request: Request) -> Response:
        return Response({"url": lender_payout_onboard(lender_user=_user(request))})
