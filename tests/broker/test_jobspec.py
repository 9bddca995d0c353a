"""JobSpec (broker/jobspec.py): one validated, frozen job specification, and the only list of its fields."""

import ast
import dataclasses
import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db.models import ManyToManyField
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from broker.api.jobs import spec_from_request
from broker.engine.types import REASONS
from broker.forms import JobBookingForm
from broker.jobspec import FIELD_BY_REASON, FIELDS, PAYLOAD_KEYS, QUOTE_KEYS, SNAPSHOT_COLUMNS, JobSpec
from broker.models import Job
from broker.services.jobs import job_book
from common.errors import ValidationFailed
from tests.broker.booking_helpers import fund, node
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]

# A reserved window a month from now, inside the booking horizon (RIGSHIFT_BOOKING_HORIZON_DAYS).
_DAY = (datetime.now(UTC) + timedelta(days=30)).replace(hour=0, minute=0, second=0, microsecond=0)
EARLIEST, LATEST, BEFORE = ((_DAY + timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:%SZ") for d in (0, 1, -1))

# Every field set (the reserved mode takes a window; a bid is kept for any mode).
FULL = {
    "gpu_count": 2,
    "min_gpu_ram": "24",
    "gpu_models": ["RTX-4090"],
    "min_compute_cap": "8.0",
    "min_tier": "inference",
    "regions": ["eu", "us"],
    "min_reliability": "0.9",
    "verified_only": "false",
    "min_inet_down": 100,
    "min_cpu_cores_per_gpu": 4,
    "min_ram_gb_per_gpu": 16,
    "min_disk_gb_per_gpu": 50,
    "mode": "reserved",
    "placement": "reliable",
    "max_price": "1.25",
    "bid": "0.5",
    "earliest_start": EARLIEST,
    "latest_start": LATEST,
    "duration_hours": "1.5",
    "name": " train ",
    "image": "pytorch/pytorch:latest",
    "command": "python train.py",
    "env": {"A": "1"},
    "ports": [8888, 22, 8888],
    "template": "cuda-ssh",
    "ssh": True,
}


@pytest.fixture
def catalog() -> None:
    node(name="eu-4090", gpu="rtx-4090", gpu_count=4, region="eu")


# `node` (booking from an offer) needs a node id: tests/broker/test_pricing.py covers it.
NOT_IN_FULL = {"node"}


def test_the_example_sets_every_field() -> None:
    assert set(FULL) | NOT_IN_FULL == set(PAYLOAD_KEYS)


def test_from_payload_converts_each_field(catalog: None) -> None:
    spec = JobSpec.from_payload(FULL, booking=True)
    req, terms, work = spec.requirements, spec.terms, spec.workload
    assert (req.gpu_count, req.gpu_models, req.regions, req.min_reliability, req.verified_only) == (
        2,
        ("rtx-4090",),
        ("eu", "us"),
        0.9,
        False,
    )
    assert (terms.max_price_micros, terms.bid_micros, terms.duration_seconds) == (1_250_000, 500_000, 5400)
    assert terms.price_limit_micros == 1_250_000 and spec.max_cost_micros == 3_750_000  # 1.25 × 2 × 1.5 h
    assert (spec.name, work.ports, dict(work.env)) == ("train", (22, 8888), {"A": "1"})


def test_fingerprint_is_the_one_bookings_had_before_jobspec(catalog: None, monkeypatch: Any) -> None:
    # Computed by the previous parser (broker.selectors.requirements.job_spec_parse) for FULL without the bid,
    # with its window of 2030-01-01 to 2030-01-02: a client replaying an Idempotency-Key across the upgrade
    # still gets its job back. The clock is set a month before that window (inside the booking horizon).
    monkeypatch.setattr("broker.jobspec.timezone.now", lambda: datetime(2029, 12, 1, tzinfo=UTC))
    window = {"earliest_start": "2030-01-01T00:00:00Z", "latest_start": "2030-01-02T00:00:00Z"}
    # template and ssh were added later
    payload = {k: v for k, v in {**FULL, **window}.items() if k not in ("bid", "placement", "template", "ssh")}
    assert JobSpec.from_payload(payload, booking=True).fingerprint() == (
        "6514629ac41f6d086a072bb6687e57e807bcbeb2a3dcecbc28a5bc1f72ada6dc"
    )


def test_spec_is_frozen(catalog: None) -> None:
    spec = JobSpec.from_payload(FULL, booking=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.requirements.gpu_count = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.workload.env["B"] = "2"  # type: ignore[index]


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"gpu_count": None}, "gpu_count", "required"),
        ({"min_gpu_ram": "24.25"}, "min_gpu_ram", "decimal place"),
        ({"min_gpu_ram": "100000"}, "min_gpu_ram", "<= 99999.9"),  # the column holds 6 digits
        ({"min_reliability": "1.5"}, "min_reliability", "<= 1"),
        ({"regions": ["mars"]}, "regions", "mars"),
        ({"gpu_models": ["warp-9"]}, "gpu_models", "warp-9"),
        ({"env": "NOEQUALS"}, "env", "KEY=VALUE"),
        ({"env": {"1BAD": "x"}}, "env", "variable names"),
        ({"ports": "80, 99999"}, "ports", "not a port number"),
        ({"image": "has space"}, "image", "no spaces"),
        ({"image": "", "template": ""}, "image", "required"),
        ({"duration_hours": "721"}, "duration_hours", "<= 720"),
        ({"duration_hours": None}, "duration_hours", "required"),
        ({"max_price": None}, "max_price", "needs a max_price"),
        ({"mode": "interruptible", "bid": None, "earliest_start": None, "latest_start": None}, "bid", "needs a bid"),
        ({"latest_start": None}, "latest_start", "start window"),
        ({"latest_start": BEFORE}, "latest_start", "after earliest_start"),
        ({"latest_start": "9999-12-31T00:00:00Z"}, "latest_start", "within 365 days"),
        ({"earliest_start": "9999-12-30T00:00:00Z"}, "earliest_start", "within 365 days"),
        ({"duration_hours": "0"}, "duration_hours", "> 0"),
        ({"mode": "on_demand"}, "earliest_start", "Only reserved"),
        ({"verified_only": "maybe"}, "verified_only", "true or false"),
    ],
)
def test_each_bad_field_is_named(catalog: None, changes: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        JobSpec.from_payload({**FULL, **changes}, booking=True)
    assert words in " ".join(caught.value.details[field])


def test_lists_may_come_as_text(catalog: None) -> None:
    spec = JobSpec.from_payload(
        {**FULL, "regions": "EU, us eu", "gpu_models": "rtx-4090", "ports": "22 8888"}, booking=True
    )
    assert (spec.requirements.regions, spec.requirements.gpu_models, spec.workload.ports) == (
        ("eu", "us"),
        ("rtx-4090",),
        (22, 8888),
    )


def test_a_quote_reads_only_requirements_and_terms(catalog: None) -> None:
    spec = JobSpec.from_payload({"gpu_count": 1, "image": "has space", "env": "junk"}, booking=False)
    assert spec.workload.image == "" and spec.terms.duration_seconds is None and spec.max_cost_micros is None
    assert set(QUOTE_KEYS) == {f.key for f in FIELDS if f.part in ("requirements", "terms")}
    customer = CustomerFactory()
    fund(customer, 100)
    with pytest.raises(ValidationFailed) as caught:  # a quote's spec cannot be booked
        job_book(customer=customer, data=spec)
    assert {"image", "duration_hours", "max_price"} <= set(caught.value.details)
    assert not Job.objects.exists()


def test_booked_job_gives_back_its_spec(catalog: None) -> None:
    customer = CustomerFactory()
    fund(customer, 100)
    spec = JobSpec.from_payload(FULL, booking=True)
    job = job_book(customer=customer, data=spec)
    assert JobSpec.from_job(Job.objects.get(pk=job.pk)) == spec
    assert job.request_fingerprint == spec.fingerprint()
    fields = spec.to_model_fields()
    assert fields["max_price_micros"] == 1_250_000 and fields["ports"] == [22, 8888] and fields["env"] == {"A": "1"}


def test_a_nameless_job_is_named_after_its_image(catalog: None) -> None:
    spec = JobSpec.from_payload({**FULL, "name": ""}, booking=True)
    assert spec.to_model_fields()["name"] == "pytorch:latest"


def test_rows_label_every_set_field(catalog: None) -> None:
    rows = dict(JobSpec.from_payload(FULL, booking=True).rows("requirements", "terms"))
    assert rows["Min reliability"] == "90.0%" and rows["Verified nodes only"] == "no"
    assert rows["Duration (hours)"] == "1.5 h" and rows["Mode"] == "Reserved"
    assert len(rows) == len(QUOTE_KEYS) - len(NOT_IN_FULL)


# --------------------------------------------------------------------------- one definition, three entry points


def _api_spec(payload: dict[str, Any]) -> JobSpec:
    request = Request(APIRequestFactory().post("/", payload, format="json"), parsers=[JSONParser()])
    return spec_from_request(request, booking=True)


def _form_spec(payload: dict[str, Any]) -> JobSpec | None:
    post = {
        **payload,
        "env": "\n".join(f"{k}={v}" for k, v in payload["env"].items()),
        "ports": ", ".join(str(p) for p in payload["ports"]),
        "gpu_models": [slug.lower() for slug in payload["gpu_models"]],
        "verified_only": "",  # an unticked box is not posted
    }
    form = JobBookingForm({k: v for k, v in post.items() if v != ""})
    return form.spec(booking=True)


def _cli_spec() -> JobSpec:
    from rigshift_cli.main import build_parser, job_payload

    argv = shlex.split(
        "jobs create --gpus 2 --min-gpu-ram 24 --gpu-model rtx-4090 --min-compute-cap 8.0 --min-tier inference "
        "--region eu --region us --min-reliability 0.9 --any-node --min-inet-down 100 --min-cpu-cores-per-gpu 4 "
        "--min-ram-per-gpu 16 --min-disk-per-gpu 50 --mode reserved --placement reliable --max-price 1.25 --bid 0.5 "
        f"--earliest-start {EARLIEST} --latest-start {LATEST} --hours 1.5 --name train "
        "--image pytorch/pytorch:latest --command 'python train.py' --env A=1 --port 8888 --port 22 "
        "--template cuda-ssh --ssh"
    )
    payload = job_payload(build_parser().parse_args(argv))
    assert set(payload) | NOT_IN_FULL == set(PAYLOAD_KEYS)  # every key can be given on the command line
    return JobSpec.from_payload(payload, booking=True)


def test_api_portal_and_cli_build_the_same_spec(catalog: None) -> None:
    api = _api_spec(FULL)
    assert _form_spec(FULL) == api
    assert _cli_spec() == api


def test_the_api_refuses_a_bad_field_with_its_name(catalog: None) -> None:
    with pytest.raises(ValidationFailed) as caught:
        _api_spec({**FULL, "ports": [80], "env": {"A": "1"}, "duration_hours": "0"})
    assert set(caught.value.details) == {"duration_hours"}


# --------------------------------------------------------------------------- the table agrees with its users


def test_every_requirement_reason_of_the_engine_names_its_field() -> None:
    not_a_field = {"availability_window", "price", "capacity", "contention"}
    assert set(FIELD_BY_REASON) == set(REASONS) - not_a_field


def test_every_field_is_a_job_column() -> None:
    model_fields = {f.name: f for f in Job._meta.get_fields()}
    model_fields |= {f.attname: f for f in Job._meta.concrete_fields}  # a foreign key by its column (node_id)
    for f in FIELDS:
        assert f.attr in model_fields, f.attr
        assert isinstance(model_fields[f.attr], ManyToManyField) == (not f.column), f.attr
    assert set(SNAPSHOT_COLUMNS) <= set(model_fields)


# --------------------------------------------------------------------------- nobody else lists the fields

FIELD_NAMES = frozenset({f.key for f in FIELDS} | {f.attr for f in FIELDS})
# Allowed: the list itself, the Job model's columns, and the matching engine's own (numpy) vocabulary. The CLI,
# which cannot import Django, keeps its own copy; tests/cli/test_cli_payload.py checks it is the same.
# The CLI and the history replay (demo seed, simulator) send one booking payload each, as an API client would.
ALLOWED = {"broker/jobspec.py", "broker/models.py", "agent/rigshift_cli/main.py", "broker/services/replay.py"}
ALLOWED_DIRS = ("broker/engine/", "tests/", "bench/", "agent/rigshift_agent/")
MOST = 5  # an enumeration naming more fields than this is a second field list


def enumerations(source: str) -> list[tuple[int, set[str]]]:
    """(line, field names) of each enumeration: a tuple/list/set/dict literal, one call's string arguments and
    keyword names, or one class body's assigned names."""
    found = []
    for item in ast.walk(ast.parse(source)):
        if isinstance(item, (ast.Tuple, ast.List, ast.Set)):
            names = {e.value for e in item.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
        elif isinstance(item, ast.Dict):
            names = {k.value for k in item.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
        elif isinstance(item, ast.Call):
            names = {a.value for a in item.args if isinstance(a, ast.Constant) and isinstance(a.value, str)}
            names |= {k.arg for k in item.keywords if k.arg}
        elif isinstance(item, ast.ClassDef):
            targets = [t for s in item.body if isinstance(s, ast.Assign) for t in s.targets]
            targets += [s.target for s in item.body if isinstance(s, ast.AnnAssign)]
            names = {t.id for t in targets if isinstance(t, ast.Name)}
        else:
            continue
        found.append((item.lineno, names & FIELD_NAMES))
    return found


def test_no_other_module_lists_the_fields() -> None:
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in ALLOWED or rel.startswith(ALLOWED_DIRS) or "/migrations/" in rel or rel.startswith(".venv"):
            continue
        offenders += [
            f"{rel}:{line} {sorted(names)}" for line, names in enumerations(path.read_text()) if len(names) > MOST
        ]
    assert offenders == [], "derive the list from broker.jobspec.FIELDS instead"


@pytest.mark.parametrize(
    "source",
    [
        "class JobIn(Serializer):\n    gpu_count = F()\n    min_gpu_ram = F()\n    gpu_models = F()\n"
        "    min_tier = F()\n    regions = F()\n    mode = F()\n",
        "Job.objects.values_list('pk', 'gpu_count', 'min_gpu_ram', 'min_tier', 'regions', 'mode', 'bid_micros')",
        "def f(s):\n    return {'gpu_count': 1, 'min_gpu_ram': 2, 'image': s, 'env': {}, 'ports': [], 'command': ''}",
    ],
)
def test_the_listing_scan_finds_a_second_list(source: str) -> None:
    assert any(len(names) > MOST for _, names in enumerations(source))
