"""scripts/refresh_prices.py against a local HTTP server serving realistic price-list documents."""

from __future__ import annotations

import importlib.util
import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pyctl.catalog.prices import parse_prices

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"
_spec = importlib.util.spec_from_file_location("refresh_prices", ROOT / "scripts" / "refresh_prices.py")
assert _spec is not None and _spec.loader is not None
refresh_prices = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(refresh_prices)


class PriceListHandler(BaseHTTPRequestHandler):
    """The AWS bulk price list (any region: the same CSV) and two pages of GCP billing catalog SKUs."""

    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        url = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(url.query)
        self.requests.append(self.path)
        if url.path.startswith("/offers/v1.0/aws/AmazonEC2/current/") and url.path.endswith("/index.csv"):
            self._send("text/csv", (FIXTURES / "aws-ec2-us-east-1-index.csv").read_bytes())
        elif url.path == "/v1/services/6F81-5844-456A/skus" and query.get("key") == ["test-key"]:
            page = "page2" if query.get("pageToken") else "page1"
            self._send("application/json", (FIXTURES / f"gcp-compute-skus-{page}.json").read_bytes())
        else:
            self.send_error(403 if url.path.endswith("/skus") else 404)

    def _send(self, content_type: str, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def price_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), PriceListHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("PYCTL_AWS_PRICING_ENDPOINT", url)
    monkeypatch.setenv("PYCTL_GCP_BILLING_ENDPOINT", url)
    PriceListHandler.requests = []
    yield url
    server.shutdown()
    server.server_close()


def test_aws_csv_keeps_only_linux_shared_on_demand_rows():
    lines = (FIXTURES / "aws-ec2-us-east-1-index.csv").read_text().splitlines(keepends=True)
    prices = refresh_prices.aws_on_demand_prices(lines, {"g5.xlarge", "p5.48xlarge", "g6.xlarge"})
    # Windows, dedicated, SQL, reserved-term, unused- and allocated-reservation rows are all skipped
    assert prices == {"g5.xlarge": 1.006, "p5.48xlarge": 55.04}


def test_aws_csv_with_two_plain_prices_for_one_type_is_refused():
    lines = (FIXTURES / "aws-ec2-us-east-1-index.csv").read_text().splitlines(keepends=True)
    doubled = [*lines, lines[-3].replace("55.0400000000", "54.0000000000").replace("QG5D", "XXXX")]
    with pytest.raises(ValueError, match="several Linux on-demand prices for p5.48xlarge"):
        refresh_prices.aws_on_demand_prices(doubled, {"p5.48xlarge"})


def test_gcp_machine_price_is_the_sum_of_its_skus():
    skus = [*json.loads((FIXTURES / "gcp-compute-skus-page1.json").read_text())["skus"],
            *json.loads((FIXTURES / "gcp-compute-skus-page2.json").read_text())["skus"]]  # fmt: skip
    prices = refresh_prices.gcp_sku_prices(skus, "us-central1")
    catalog_gcp = refresh_prices.load_catalog().instance_types["gcp"]
    # 12 vCPU x $0.031611 + 85 GiB x $0.004237 + 1 A100 x $2.933908 = the list price of a2-highgpu-1g
    assert refresh_prices.gcp_machine_price(catalog_gcp["a2-highgpu-1g"], prices, "OnDemand") == 3.673385
    # N1 without its GPUs: 8 x 0.031611 + 30 x 0.004237
    assert refresh_prices.gcp_machine_price(catalog_gcp["n1-standard-8"], prices, "OnDemand") == 0.379998
    assert refresh_prices.gcp_machine_price(catalog_gcp["n1-standard-8"], prices, "Preemptible") == 0.08
    # commitment SKUs are not on-demand prices; series without SKUs in the document have no price
    assert refresh_prices.gcp_machine_price(catalog_gcp["g2-standard-4"], prices, "OnDemand") is None


def test_refresh_writes_validated_prices_and_keeps_what_it_could_not_price(
    price_server, monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv("PYCTL_GCP_BILLING_API_KEY", "test-key")
    out = tmp_path / "prices.json"
    assert refresh_prices.main(["--output", str(out)]) == 0
    book = parse_prices(out.read_text())
    aws = book.instance_types["aws"]
    assert aws["g5.xlarge"].on_demand_hourly == {"us-east-1": 1.006, "us-east-2": 1.006, "us-west-2": 1.006}
    assert "AWS Price List bulk API" in aws["g5.xlarge"].source
    assert not aws["g5.xlarge"].estimate
    gcp = book.instance_types["gcp"]
    assert gcp["a2-highgpu-1g"].on_demand_hourly == {"us-central1": 3.673385}
    assert gcp["n1-standard-8"].on_demand_hourly == {"us-central1": 0.379998, "us-east1": 0.379998}
    assert book.gcp_accelerators["t4"].on_demand_hourly == {"us-central1": 0.35, "us-east1": 0.35}
    assert book.spot_discounts["gcp"]["n1"].percent == pytest.approx(78.9)
    # not in the fixture documents: kept as they were, and listed
    assert (
        gcp["a3-highgpu-8g"]
        == parse_prices((ROOT / "pyctl/catalog/data/prices.json").read_text()).instance_types["gcp"][
            "a3-highgpu-8g"
        ]
    )
    err = capsys.readouterr().err
    assert "aws: no price found, entry kept as it was: g4dn.12xlarge" in err
    assert "a3-highgpu-8g" in err
    # the GCP catalog was read page by page
    assert sum("/skus?" in r for r in PriceListHandler.requests) == 2


def test_unreachable_price_list_fails_cleanly_and_writes_nothing(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PYCTL_AWS_PRICING_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    out = tmp_path / "prices.json"
    assert refresh_prices.main(["--cloud", "aws", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "refresh_prices: aws: cannot reach http://127.0.0.1:9/offers/v1.0/aws/AmazonEC2/current/" in err
    assert "prices.json unchanged" in err
    assert not out.exists()


def test_gcp_without_an_api_key_says_what_to_set(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("PYCTL_GCP_BILLING_API_KEY", raising=False)
    assert refresh_prices.main(["--cloud", "gcp", "--output", str(tmp_path / "p.json")]) == 2
    assert "set PYCTL_GCP_BILLING_API_KEY" in capsys.readouterr().err


def test_a_refused_request_is_reported_with_its_status(price_server, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PYCTL_GCP_BILLING_API_KEY", "wrong-key")
    assert refresh_prices.main(["--cloud", "gcp", "--output", str(tmp_path / "p.json")]) == 2
    assert "skus answered HTTP 403" in capsys.readouterr().err
