"""Forms of the admin matching console: queue and node filters, manual assignment, node actions."""

from typing import Any

from django import forms

from broker.models import JobMode, JobState
from broker.selectors.console import NodeFilters, QueueFilters
from marketplace.models import NodeStatus, Region

YES_NO = [("", "any"), ("yes", "yes"), ("no", "no")]


class QueueFilterForm(forms.Form):
    state = forms.ChoiceField(choices=[("", "pending (default)"), *JobState.choices], required=False)
    mode = forms.ChoiceField(choices=[("", "any"), *JobMode.choices], required=False)
    region = forms.ChoiceField(choices=[("", "any"), *Region.choices], required=False)
    min_age = forms.IntegerField(
        label="Min age (minutes)", min_value=0, max_value=60 * 24 * 365, required=False, widget=forms.NumberInput()
    )
    customer = forms.CharField(max_length=100, required=False, help_text="Company, username or id")

    def filters(self) -> QueueFilters:
        """The filters to apply; invalid fields are ignored (the form shows their errors)."""
        data: dict[str, Any] = self.cleaned_data if self.is_valid() else {}
        state = data.get("state") or JobState.PENDING
        return QueueFilters(
            states=(state,),
            mode=data.get("mode") or "",
            region=data.get("region") or "",
            min_age_minutes=data.get("min_age") or None,
            customer=(data.get("customer") or "").strip(),
        )


class NodeFilterForm(forms.Form):
    status = forms.ChoiceField(choices=[("", "any"), *NodeStatus.choices], required=False)
    verified = forms.ChoiceField(choices=YES_NO, required=False)
    cordoned = forms.ChoiceField(choices=YES_NO, required=False)
    mismatch = forms.ChoiceField(label="Hardware mismatch", choices=YES_NO, required=False)
    q = forms.CharField(label="Name or provider", max_length=100, required=False)

    def filters(self) -> NodeFilters:
        data: dict[str, Any] = self.cleaned_data if self.is_valid() else {}
        return NodeFilters(**{name: (data.get(name) or "").strip() for name in self.fields})


class ManualAssignForm(forms.Form):
    node = forms.IntegerField(label="Node", min_value=1)
    override = forms.BooleanField(label="Override constraints", required=False)
    reason = forms.CharField(
        label="Reason (required to override; audit-logged)", max_length=500, required=False, widget=forms.Textarea
    )


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=500, required=False)


class DrainForm(ReasonForm):
    end_leases = forms.BooleanField(
        label="End its leases now (jobs are re-queued elsewhere)", required=False, initial=False
    )
