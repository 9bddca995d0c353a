"""Provider portal forms. They shape input for the services, which do the real validation."""

import json
from decimal import Decimal
from typing import Any

from django import forms

from common.errors import ValidationFailed
from common.numbers import DecimalFormField
from marketplace.countries import COUNTRY_CHOICES, COUNTRY_REGION, PAYOUT_CURRENCY_CHOICES, region_for_country
from marketplace.models import GPUModel, Region, Tier
from marketplace.selectors.nodes import UNVERIFIED_NODE_RULE
from marketplace.services.nodes import MAX_GPUS_PER_NODE

_PRICE_KW: dict[str, Any] = {
    "max_digits": 12,
    "decimal_places": 6,
    "min_value": Decimal(0),
    "max_value": Decimal(100),
}


def form_add_domain_errors(form: forms.Form, exc: ValidationFailed) -> None:
    """Attach a service's per-field errors to the form's fields (unknown fields become form errors)."""
    details = exc.details if isinstance(exc.details, dict) else {}
    if not details:
        form.add_error(None, exc.message)
        return
    for field, messages in details.items():
        for message in messages if isinstance(messages, list) else [messages]:
            form.add_error(field if field in form.fields else None, str(message))


class ProviderSignupForm(forms.Form):
    username = forms.CharField(max_length=150, widget=forms.TextInput(attrs={"autocomplete": "username"}))
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 8 characters; not a common password.",
    )
    email = forms.EmailField()
    company = forms.CharField(max_length=200)
    contact_name = forms.CharField(max_length=200)
    country = forms.ChoiceField(choices=[("", "Choose a country…"), *COUNTRY_CHOICES])
    payout_currency = forms.ChoiceField(choices=PAYOUT_CURRENCY_CHOICES, initial="USD")


def _gpu_model_choices() -> list[Any]:
    groups: dict[str, list[tuple[str, str]]] = {label: [] for _, label in Tier.choices}
    for model in GPUModel.objects.order_by("-vram_gb", "name"):
        groups[Tier(model.tier).label].append((model.slug, f"{model.name} ({model.vram_gb:g} GB)"))
    order = [Tier.TRAINING, Tier.FINE_TUNING, Tier.INFERENCE, Tier.UNSUITABLE]
    choices: list[Any] = [("", "Choose a GPU model…")]
    for tier in order:
        if groups[tier.label]:
            choices.append((f"{tier.label} tier", groups[tier.label]))
    return choices


class NodeRegisterForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Unique among your nodes, e.g. rack2-box7.")
    region = forms.ChoiceField(choices=Region.choices, help_text="Follows the country; change it if it differs.")
    country = forms.ChoiceField(
        choices=[("", "Choose a country…"), *COUNTRY_CHOICES],
        # static/js/rigshift.js sets the region when the country changes (CSP: no inline script).
        widget=forms.Select(attrs={"data-region-target": "id_region", "data-region-map": json.dumps(COUNTRY_REGION)}),
    )
    gpu_model = forms.ChoiceField(label="GPU model")
    gpu_count = forms.IntegerField(label="GPU count", min_value=1, max_value=MAX_GPUS_PER_NODE, initial=1)
    cpu_cores = forms.IntegerField(label="CPU cores", min_value=0, initial=0)
    ram_gb = forms.IntegerField(label="RAM (GB)", min_value=0, initial=0)
    disk_gb = forms.IntegerField(label="Disk (GB)", min_value=0, initial=0)
    inet_down_mbps = forms.IntegerField(label="Internet down (Mbps)", min_value=0, initial=0)
    inet_up_mbps = forms.IntegerField(label="Internet up (Mbps)", min_value=0, initial=0)
    price_per_gpu_hour = DecimalFormField(
        label="On-demand price per GPU-hour (USD)", initial=Decimal("0.00"), **_PRICE_KW
    )
    min_bid_per_gpu_hour = DecimalFormField(
        label="Minimum interruptible bid per GPU-hour (USD)", initial=Decimal("0.00"), **_PRICE_KW
    )
    listed = forms.BooleanField(
        label="List on the marketplace",
        help_text=UNVERIFIED_NODE_RULE,
        required=False,
        widget=forms.CheckboxInput(attrs={"style": "min-width:0"}),
    )

    def __init__(self, *args: Any, provider_country: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["gpu_model"].choices = _gpu_model_choices()  # type: ignore[attr-defined]
        if provider_country:
            self.fields["country"].initial = provider_country
            self.fields["region"].initial = region_for_country(provider_country)


class _DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self) -> None:
        super().__init__(format="%Y-%m-%dT%H:%M")


class NodeListingForm(forms.Form):
    price_per_gpu_hour = DecimalFormField(label="On-demand price per GPU-hour (USD)", **_PRICE_KW)
    min_bid_per_gpu_hour = DecimalFormField(label="Minimum interruptible bid per GPU-hour (USD)", **_PRICE_KW)
    storage_price_per_gb_month = DecimalFormField(
        label="Storage per GB-month (USD, 0 = free)",
        min_value=0,
        max_value=10,
        decimal_places=6,
        max_digits=12,
        required=False,
        help_text="Charged for the storage a lease holds; empty keeps the current price.",
    )
    egress_price_per_gb = DecimalFormField(
        label="Egress per GB (USD, 0 = free)",
        min_value=0,
        max_value=10,
        decimal_places=6,
        max_digits=12,
        required=False,
        help_text="Charged for the data a lease sends out; empty keeps the current price.",
    )
    available_from = forms.DateTimeField(
        label="Available from (UTC)", required=False, widget=_DateTimeLocalInput(), help_text="Empty: from now."
    )
    available_until = forms.DateTimeField(
        label="Available until (UTC)", required=False, widget=_DateTimeLocalInput(), help_text="Empty: open-ended."
    )
    listed = forms.BooleanField(
        label="Listed on the marketplace", required=False, widget=forms.CheckboxInput(attrs={"style": "min-width:0"})
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("available_from"), data.get("available_until")
        if start and end and start >= end:
            self.add_error("available_until", "The end of the availability window must be after its start.")
        price, bid = data.get("price_per_gpu_hour"), data.get("min_bid_per_gpu_hour")
        if price is not None and bid is not None and bid > price:
            self.add_error("min_bid_per_gpu_hour", "The minimum interruptible bid cannot exceed the on-demand price.")
        return data


class NodeConnectionForm(forms.Form):
    public_host = forms.CharField(
        label="Public address",
        max_length=253,
        required=False,
        help_text="The IP address or DNS name customers connect to, e.g. 203.0.113.5.",
    )
    port_range_start = forms.IntegerField(label="First host port", min_value=1024, max_value=65535)
    port_range_end = forms.IntegerField(
        label="Last host port",
        min_value=1024,
        max_value=65535,
        help_text="Forward this range from your router to the machine; each workload port gets one of them.",
    )
