"""One formatter for enumerations: the label a person reads ("Fine-tuning", "Europe"), never the slug.

Labels come from the `choices` of the installed models' fields (Tier, Region, JobState, …), found once at first
use, so common imports no app. A value is looked up under its field name ("tier", "region", "state") or its
model and field ("job.state", "lease.state") where one name has several enumerations; a value no enumeration
knows is humanised ("fine_tuning" → "Fine-tuning", "not_a_gpu" → "Not a GPU").
"""

from functools import lru_cache

from django.apps import apps

_WORDS = {"gpu": "GPU", "gpus": "GPUs", "api": "API", "sla": "SLA", "csv": "CSV", "ai": "AI"}
_HYPHENATED = {"fine_tuning"}


@lru_cache(maxsize=1)
def _choice_labels() -> dict[str, dict[str, str]]:
    """{"tier": {"fine_tuning": "Fine-tuning", …}, "job.state": {…}, …} from every model field with choices."""
    table: dict[str, dict[str, str]] = {}
    for model in apps.get_models():
        for field in model._meta.get_fields():
            choices = getattr(field, "flatchoices", None)
            if not choices:
                continue
            pairs = {str(value): str(label) for value, label in choices}
            table.setdefault(f"{model._meta.model_name}.{field.name}", {}).update(pairs)
            for value, label in pairs.items():
                table.setdefault(field.name, {}).setdefault(value, label)
    return table


def humanise(value: str) -> str:
    """A slug as words: "fine_tuning" → "Fine-tuning", "not_a_gpu" → "Not a GPU"."""
    if value in _HYPHENATED:
        text = value.replace("_", "-")
    else:
        text = " ".join(_WORDS.get(word, word) for word in value.replace("-", "_").split("_"))
    return text[:1].upper() + text[1:]


def enum_label(value: object, *, field: str = "") -> str:
    """The label of an enumeration value; "—" for none."""
    if value is None or value == "":
        return "—"
    text = str(value)
    if field:
        label = _choice_labels().get(field, {}).get(text)
        if label is not None:
            return label
    return humanise(text)
