"""The CLI builds the jobs/quotes payload with the server's JobSpec keys (it cannot import Django, so it keeps its
own table of options: this test keeps the two the same)."""

import pytest
from rigshift_cli.main import PAYLOAD_OPTIONS, UsageError, build_parser, job_payload

from broker.jobspec import PAYLOAD_KEYS, QUOTE_KEYS


def test_cli_payload_keys_are_jobspec_field_names() -> None:
    assert sorted(PAYLOAD_OPTIONS) == sorted(PAYLOAD_KEYS)


def test_every_option_exists_on_jobs_create() -> None:
    args = build_parser().parse_args(["jobs", "create", "--name", "n", "--image", "i", "--hours", "1"])
    assert [dest for dest in PAYLOAD_OPTIONS.values() if not hasattr(args, dest)] == []


def test_a_quote_sends_requirements_and_terms_only_and_leaves_unset_options_out() -> None:
    args = build_parser().parse_args(["quote", "--gpus", "2", "--region", "eu", "--max-price", "1.5"])
    payload = job_payload(args)
    assert payload == {"gpu_count": 2, "regions": ["eu"], "mode": "on_demand", "max_price": "1.5"}
    assert set(payload) <= set(QUOTE_KEYS)


def test_a_booking_sends_its_workload() -> None:
    argv = ["jobs", "create", "--name", "n", "--image", "img", "--hours", "2", "--env", "A=1", "--port", "80"]
    payload = job_payload(build_parser().parse_args([*argv, "--command", "run"]))
    assert payload["env"] == {"A": "1"} and payload["ports"] == [80] and payload["command"] == "run"
    assert payload["duration_hours"] == "2" and payload["name"] == "n" and payload["image"] == "img"


def test_a_bad_env_pair_is_a_usage_error() -> None:
    args = build_parser().parse_args(["jobs", "create", "--name", "n", "--image", "i", "--hours", "1", "--env", "X"])
    with pytest.raises(UsageError):
        job_payload(args)
