"""Fleet input that meets miners where they are (issue 17, point 6): ASICs are not GPUs, every bad line at once,
`;` and tab separators, the assessment's verdict again at node registration, the region follows the country."""

import pytest
from django.test import Client

from common.errors import ValidationFailed
from marketplace.countries import COUNTRIES, region_for_country
from marketplace.forms import NodeRegisterForm
from marketplace.models import Node, Region
from marketplace.services.assessment import fleet_assess, parse_fleet_csv, parse_fleet_text
from marketplace.services.gpu_names import is_mining_asic
from tests.factories import ProviderFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "name",
    ["Antminer S19 Pro", "Bitmain S19j Pro 104TH", "Whatsminer M30S++", "AvalonMiner 1246", "Avalon 1166 Pro", "L7"],
)
def test_mining_asics_are_recognised(name: str) -> None:
    assert is_mining_asic(name)


@pytest.mark.parametrize("name", ["RX 580 8GB", "RTX 3090", "Tesla M60", "L40S", "L4", "T4", "H100 SXM5"])
def test_gpus_are_not_asics(name: str) -> None:
    assert not is_mining_asic(name)


def test_asics_are_reported_as_not_a_gpu_and_not_counted() -> None:
    fleet = [("Antminer S19 Pro", 10), ("RTX 3090", 4), ("Whatsminer M30S++", 5), ("AvalonMiner 1246", 2)]
    report = fleet_assess(provider=ProviderFactory(), lines=fleet).report
    assert report["total_gpus"] == 4 and report["qualifying_gpus"] == 4
    assert report["unmatched"] == [] and report["unmatched_gpus"] == 0
    assert [item["raw_model"] for item in report["not_gpus"]] == [name for name, _ in fleet if name != "RTX 3090"]
    assert report["not_gpu_units"] == 17
    assert all("not a GPU" in item["message"] for item in report["not_gpus"])


def test_assessment_page_says_not_a_gpu() -> None:
    provider = ProviderFactory()
    client = Client()
    client.force_login(provider.user)
    response = client.post(
        "/provider/assessments/new/", {"text": "Antminer S19,3\nRTX 3090,2\n", "utilisation_pct": "60"}
    )
    assert response.status_code == 302
    html = client.get(response["Location"]).content.decode()
    assert 'id="not-gpus"' in html and "not a GPU" in html and "unknown GPU model" not in html.lower()


def test_every_bad_line_is_reported_at_once() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_fleet_csv(data=b"model,count\nRTX 3090,four\nRX 580,\nGTX 1070,3,1\nRTX 4090,2\n,5\n")
    message = caught.value.message
    assert message.startswith("4 lines need fixing:")
    for fragment in ("Line 2: count 'four'", "Line 3: the count is missing", "Line 4: expected two columns", "Line 6"):
        assert fragment in message
    assert len(caught.value.details["lines"]) == 4
    with pytest.raises(ValidationFailed) as service:
        fleet_assess(provider=ProviderFactory(), lines=[("RTX 3090", 0), ("", 2), ("RX 580", 1)])
    assert "Line 1" in service.value.message and "Line 2" in service.value.message


def test_page_shows_every_bad_line() -> None:
    client = Client()
    client.force_login(ProviderFactory().user)
    html = client.post("/provider/assessments/new/", {"text": "RTX 3090,x\nRX 580,y\n", "utilisation_pct": "60"})
    body = html.content.decode()
    assert "Line 1: count" in body and "Line 2: count" in body


@pytest.mark.parametrize(
    "data",
    [
        b"Model;Count\nRTX 3090;12\nRX 580 8GB;30\n",
        b'"RX 580, 8GB";30\nRTX 3090;12\n',  # a comma inside the first line does not make it comma-separated
        b"sep=;\nModell;Anzahl\nRX 580, 8GB;30\nRTX 3090;12\n",  # spreadsheet hint line, German header
        b"Modell\tAnzahl\nRX 580, 8GB\t30\nRTX 3090\t12\n",
        b"GPU;Menge\nRX 580, 8GB;30\nRTX 3090;12\n",
    ],
)
def test_semicolon_and_tab_separated_files(data: bytes) -> None:
    lines = dict(parse_fleet_csv(data=data))
    assert lines.get("RTX 3090") == 12
    assert lines.get("RX 580 8GB", lines.get("RX 580, 8GB")) == 30


def test_thousands_with_dots_as_europeans_write_them() -> None:
    assert parse_fleet_text(text="RX 580;1.200\n") == [("RX 580", 1200)]


def test_region_follows_the_country() -> None:
    assert region_for_country("DE") == Region.EU
    assert region_for_country("US") == Region.US and region_for_country("BR") == Region.SA
    assert region_for_country("JP") == Region.ASIA and region_for_country("AU") == Region.OCEANIA
    assert region_for_country("KE") == Region.AFRICA and region_for_country("se") == Region.EU
    assert all(region_for_country(code) in Region.values for code in COUNTRIES)
    form = NodeRegisterForm(provider_country="DE")
    assert form.fields["region"].initial == Region.EU
    assert "data-region-map" in str(form["country"])


def test_node_form_page_preselects_the_providers_region() -> None:
    provider = ProviderFactory(country="DE")
    client = Client()
    client.force_login(provider.user)
    html = client.get("/provider/nodes/new/").content.decode()
    assert '<option value="eu" selected>' in html


def _register(client: Client, slug: str) -> str:
    data = {
        "name": f"rig-{slug}",
        "region": "eu",
        "country": "DE",
        "gpu_model": slug,
        "gpu_count": "6",
        "cpu_cores": "4",
        "ram_gb": "16",
        "disk_gb": "100",
        "inet_down_mbps": "100",
        "inet_up_mbps": "50",
        "price_per_gpu_hour": "0.10",
        "min_bid_per_gpu_hour": "0.05",
    }
    response = client.post("/provider/nodes/new/", data)
    assert response.status_code == 200
    return response.content.decode()


def test_registering_an_unsuitable_card_shows_the_assessments_verdict_again() -> None:
    provider = ProviderFactory()
    client = Client()
    client.force_login(provider.user)
    html = _register(client, "rx-580-8gb")
    node = Node.objects.get(name="rig-rx-580-8gb")
    assert 'id="gpu-verdict"' in html and "Unsuitable for AI work" in html
    assert node.gpu_model.tier_reason in html
    assert 'id="gpu-verdict"' in client.get(f"/provider/nodes/{node.pk}/").content.decode()
    assert 'id="gpu-verdict"' not in _register(client, "rtx-3090")
