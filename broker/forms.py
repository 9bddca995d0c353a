"""Customer portal forms. They shape input for the services, which do the real validation."""

from collections.abc import Iterable
from decimal import Decimal
from typing import Any, ClassVar

from django import forms
from django.http import QueryDict

from broker.jobspec import FIELDS, GROUPS, PAYLOAD_KEYS, QUOTE_KEYS, Field, JobSpec
from broker.jobspec_kinds import Choice, Count, Env, Flag, Hours, Money, Names, Number, Ports, Text, When
from common.errors import DomainError
from marketplace.models import GPUModel, Region, Tier

_MONEY_KW: dict[str, Any] = {"max_digits": 12, "decimal_places": 6, "min_value": Decimal(0), "max_value": Decimal(1000)}


def form_add_domain_errors(form: forms.Form, exc: DomainError) -> None:
    """Attach a service's error to the form: per-field details on their fields, the message on the form."""
    details = exc.details if isinstance(exc.details, dict) else {}
    requirement = details.get("requirement")
    if isinstance(requirement, str) and requirement in form.fields:  # an impossible requirement names its field
        form.add_error(requirement, exc.message)
        return
    placed = False
    for field, messages in details.items():
        if field in form.fields:
            for message in messages if isinstance(messages, list) else [messages]:
                form.add_error(field, str(message))
                placed = True
    if not placed:
        form.add_error(None, exc.message)


def gpu_model_choices() -> list[tuple[str, str]]:
    return [
        (m.slug, f"{m.name} ({m.vram_gb:g} GB)")
        for m in GPUModel.objects.exclude(tier=Tier.UNSUITABLE).order_by("-vram_gb", "name")
    ]


class CustomerSignupForm(forms.Form):
    username = forms.CharField(max_length=150, widget=forms.TextInput(attrs={"autocomplete": "username"}))
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 8 characters; not a common password.",
    )
    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    company = forms.CharField(max_length=200, required=False, help_text="Optional: your team or company.")


class OfferSearchForm(forms.Form):
    """The query-language box plus simple filters that are turned into clauses of the same language."""

    q = forms.CharField(
        label="Query",
        required=False,
        max_length=2000,
        widget=forms.TextInput(
            attrs={"placeholder": "gpu_ram>=24 num_gpus>=2 reliability>0.98 region in [eu,us]", "size": 60}
        ),
        help_text="Clauses of the form field op value (e.g. gpu_ram>=24), operators < <= == != >= > in notin.",
    )
    gpu_model = forms.ChoiceField(label="GPU model", required=False)
    min_vram = forms.DecimalField(label="Min VRAM (GB)", required=False, min_value=0, max_digits=6, decimal_places=1)
    region = forms.ChoiceField(label="Region", required=False, choices=[("", "Any region"), *Region.choices])
    max_price = forms.DecimalField(label="Max $/GPU-hour", required=False, **_MONEY_KW)
    min_gpus = forms.IntegerField(label="Min free GPUs", required=False, min_value=1, max_value=64)
    order = forms.ChoiceField(
        label="Sort by",
        required=False,
        choices=[
            ("price", "Price (low first)"),
            ("-dlperf_per_dollar", "Performance per dollar"),
            ("-dlperf", "Performance"),
            ("-reliability", "Reliability"),
            ("-gpu_ram", "VRAM"),
            ("-num_gpus", "Free GPUs"),
        ],
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["gpu_model"].choices = [("", "Any model"), *gpu_model_choices()]  # type: ignore[attr-defined]

    def query(self) -> str:
        """The typed query plus a clause per filled-in filter."""
        data = self.cleaned_data
        clauses = [data.get("q", "").strip()]
        if data.get("gpu_model"):
            clauses.append(f"gpu_name=={data['gpu_model']}")
        if data.get("min_vram") is not None:
            clauses.append(f"gpu_ram>={data['min_vram']}")
        if data.get("region"):
            clauses.append(f"region=={data['region']}")
        if data.get("max_price") is not None:
            clauses.append(f"price<={data['max_price']}")
        if data.get("min_gpus") is not None:
            clauses.append(f"num_gpus>={data['min_gpus']}")
        return " ".join(c for c in clauses if c)


def _form_field(f: Field) -> forms.Field:  # noqa: C901 — to split into named steps
    """The portal input for JobSpec field `f`: shaped by its kind; JobSpec validates (nothing is required here,
    JobSpec says what a booking needs)."""
    kind = f.kind
    opt: dict[str, Any] = {"label": f.label, "required": False, "help_text": f.hint}
    if isinstance(kind, Count):
        return forms.IntegerField(min_value=kind.low, max_value=kind.high, **opt)
    if isinstance(kind, Number):
        return forms.DecimalField(
            min_value=kind.low, max_value=kind.high, max_digits=kind.digits, decimal_places=kind.places, **opt
        )
    if isinstance(kind, Money):
        return forms.DecimalField(**_MONEY_KW, **opt)
    if isinstance(kind, Hours):
        return forms.DecimalField(min_value=Decimal("0.01"), max_value=kind.high, max_digits=8, decimal_places=2, **opt)
    if isinstance(kind, Names):
        return forms.MultipleChoiceField(choices=kind.choices, **opt)
    if isinstance(kind, Choice):
        offered = [(value, label) for value, label in kind.choices if value not in kind.hidden]
        return forms.ChoiceField(choices=offered if kind.initial else [("", "Any"), *offered], **opt)
    if isinstance(kind, Flag):
        return forms.BooleanField(**opt)
    if isinstance(kind, When):
        return forms.DateTimeField(widget=forms.DateTimeInput(attrs={"type": "datetime-local"}), **opt)
    if isinstance(kind, (Env, Ports)) or (isinstance(kind, Text) and kind.max_length > 1000):
        if not isinstance(kind, Ports):
            opt["widget"] = forms.Textarea(attrs={"rows": 2})
        return forms.CharField(**opt)
    assert isinstance(kind, Text)
    return forms.CharField(max_length=kind.max_length, **opt)


class JobBookingForm(forms.Form):
    """Every JobSpec field of a booking (generated from broker/jobspec.py), grouped for the page. `spec()`
    builds the JobSpec; its errors land on their fields."""

    INITIAL: ClassVar[dict[str, Any]] = {"name": "my-job", "gpu_count": 1, "image": "pytorch/pytorch:latest"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for f in FIELDS:
            self.fields[f.key] = _form_field(f)
            self.fields[f.key].initial = self.INITIAL.get(f.key, f.kind.default() or None)
        self.fields["gpu_models"].choices = gpu_model_choices()  # type: ignore[attr-defined]

    def groups(self) -> list[tuple[str, list[forms.BoundField]]]:
        return [(title, [self[f.key] for f in FIELDS if f.group == title]) for title in GROUPS]

    def payload(self, keys: Iterable[str]) -> dict[str, Any]:
        """The cleaned values of `keys` as the flat payload of the jobs API, empty values left out."""
        data = {k: self.cleaned_data.get(k) for k in keys}
        return {k: v for k, v in data.items() if v is not None and v != "" and v != []}

    def spec(self, *, booking: bool) -> JobSpec | None:
        """The booking's (or, `booking=False`, the quote's) JobSpec; None, with the errors on the form, when
        the input is invalid."""
        keys = PAYLOAD_KEYS if booking else QUOTE_KEYS
        self.is_valid()
        if any(k in self.errors for k in keys):
            return None
        try:
            return JobSpec.from_payload(self.payload(keys), booking=booking)
        except DomainError as exc:
            form_add_domain_errors(self, exc)
            return None


def form_initial_from_query(*, form_class: type[forms.Form], query: QueryDict) -> dict[str, Any]:
    """Prefill values from a link's query string (e.g. the search page's "Book" links), one per field or a list
    for multiple-choice fields."""
    fields = form_class().fields
    return {
        name: query.getlist(name) if isinstance(fields[name], forms.MultipleChoiceField) else query[name]
        for name in fields
        if query.get(name)
    }


class TopUpForm(forms.Form):
    """The amount is checked by the top-up service (`topup_amount_parse`), the same rule as the API."""

    amount = forms.CharField(
        label="Amount (USD)",
        max_length=20,
        initial="50.00",
        widget=forms.NumberInput(attrs={"step": "0.01", "min": "0.01", "inputmode": "decimal"}),
        help_text="More than $0 and at most $100,000, in dollars and cents.",
    )


def form_errors_text(form: forms.Form, *, skip: Iterable[str] = ()) -> str:
    """The form's field errors as one line, `Label: message; …` (for inline error boxes)."""
    parts = []
    for name, errors in form.errors.items():
        if name in skip:
            continue
        label = form.fields[name].label if name in form.fields and form.fields[name].label else name
        parts.append(f"{label}: {' '.join(str(e) for e in errors)}")
    return "; ".join(parts)
