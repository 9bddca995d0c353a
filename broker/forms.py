"""Customer portal forms. They shape input for the services, which do the real validation."""

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django import forms

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


class JobBookingForm(forms.Form):
    """All requirement, workload and mode fields of a booking, grouped for the page."""

    name = forms.CharField(max_length=200, initial="my-job")
    # What hardware.
    gpu_count = forms.IntegerField(label="GPUs (on one node)", min_value=1, max_value=64, initial=1)
    min_gpu_ram = forms.DecimalField(
        label="Min GPU memory (GB)", required=False, min_value=0, max_digits=6, decimal_places=1
    )
    gpu_models = forms.MultipleChoiceField(
        label="Allowed GPU models", required=False, help_text="None selected: any model that meets the rest."
    )
    min_compute_cap = forms.DecimalField(
        label="Min compute capability", required=False, min_value=0, max_digits=3, decimal_places=1
    )
    min_tier = forms.ChoiceField(
        label="Min tier",
        required=False,
        choices=[("", "Any"), *[(t.value, t.label) for t in Tier if t != Tier.UNSUITABLE]],
    )
    # Where and how good.
    regions = forms.MultipleChoiceField(
        label="Regions", required=False, choices=Region.choices, help_text="None selected: any region."
    )
    min_reliability = forms.FloatField(label="Min reliability (0–1)", required=False, min_value=0, max_value=1)
    verified_only = forms.BooleanField(label="Verified nodes only", required=False, initial=True)
    min_inet_down = forms.IntegerField(label="Min download (Mbit/s)", required=False, min_value=0)
    min_cpu_cores_per_gpu = forms.IntegerField(label="Min CPU cores per GPU", required=False, min_value=0)
    min_ram_gb_per_gpu = forms.IntegerField(label="Min RAM per GPU (GB)", required=False, min_value=0)
    min_disk_gb_per_gpu = forms.IntegerField(label="Min disk per GPU (GB)", required=False, min_value=0)
    # Workload.
    image = forms.CharField(max_length=300, initial="pytorch/pytorch:latest", label="Container image")
    command = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    env = forms.CharField(
        label="Environment", required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="KEY=VALUE per line."
    )
    ports = forms.CharField(required=False, help_text="Comma-separated, e.g. 8888, 6006.")
    # Mode, price and time.
    mode = forms.ChoiceField(
        choices=[
            ("on_demand", "On demand (max price)"),
            ("interruptible", "Interruptible (bid)"),
            ("reserved", "Reserved (start window)"),
        ],
        initial="on_demand",
    )
    max_price = forms.DecimalField(label="Max price $/GPU-hour", required=False, **_MONEY_KW)
    bid = forms.DecimalField(label="Bid $/GPU-hour", required=False, **_MONEY_KW)
    earliest_start = forms.DateTimeField(
        label="Earliest start (UTC)", required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    latest_start = forms.DateTimeField(
        label="Latest start (UTC)", required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    duration_hours = forms.DecimalField(
        label="Duration (hours)", min_value=Decimal("0.01"), max_value=Decimal(8760), max_digits=8, decimal_places=2
    )

    GROUPS = (
        ("Job", ("name",)),
        (
            "Hardware",
            ("gpu_count", "min_gpu_ram", "gpu_models", "min_compute_cap", "min_tier"),
        ),
        (
            "Location and quality",
            (
                "regions",
                "min_reliability",
                "verified_only",
                "min_inet_down",
                "min_cpu_cores_per_gpu",
                "min_ram_gb_per_gpu",
                "min_disk_gb_per_gpu",
            ),
        ),
        ("Workload", ("image", "command", "env", "ports")),
        ("Mode, price and time", ("mode", "max_price", "bid", "earliest_start", "latest_start", "duration_hours")),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["gpu_models"].choices = gpu_model_choices()  # type: ignore[attr-defined]

    def groups(self) -> list[tuple[str, list[forms.BoundField]]]:
        return [(title, [self[name] for name in names]) for title, names in self.GROUPS]

    def clean_env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for line in (self.cleaned_data.get("env") or "").splitlines():
            if not line.strip():
                continue
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise forms.ValidationError(f"Write KEY=VALUE, got {line.strip()!r}.")
            env[key.strip()] = value.strip()
        return env

    def clean_ports(self) -> list[int]:
        ports: list[int] = []
        for item in (self.cleaned_data.get("ports") or "").replace(" ", ",").split(","):
            if not item:
                continue
            if not item.isdigit() or not 1 <= int(item) <= 65535:
                raise forms.ValidationError(f"{item!r} is not a port number (1–65535).")
            ports.append(int(item))
        return ports

    def requirements(self) -> dict[str, Any]:
        """The booking as the flat fields of the jobs API (`POST /api/v1/jobs/`), empty values left out."""
        data: dict[str, Any] = {}
        for key, value in self.cleaned_data.items():
            if value is None or value == "" or value == [] or value == {}:
                continue
            data[key] = value
        data.setdefault("verified_only", False)
        return data


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
