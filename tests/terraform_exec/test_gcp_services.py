"""A fresh GCP project's first apply works: the GCP stack enables every API its resources need
(infra/stacks/gcp/services.tf), keeps them on when an env is destroyed, and creates nothing before them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import local_backend, render_env

pytestmark = pytest.mark.slow

# The API behind each resource type the stack creates (by type prefix; the longest prefix wins).
API_OF_TYPE = {
    "google_compute_": "compute.googleapis.com",
    "google_service_account": "iam.googleapis.com",
    "google_project_iam_custom_role": "iam.googleapis.com",
    "google_project_iam_member": "cloudresourcemanager.googleapis.com",
    "google_storage_": "storage.googleapis.com",
    "google_logging_": "logging.googleapis.com",
    "google_cloudfunctions2_": "cloudfunctions.googleapis.com",
    "google_cloud_run_v2_": "run.googleapis.com",
    "google_cloud_scheduler_": "cloudscheduler.googleapis.com",
    "google_project_service": "serviceusage.googleapis.com",  # enabled on the project beforehand
}
# Needed without a resource of their own: the Ops Agent writes metrics, the watchdog reads them
# (monitoring); 2nd gen functions are built by Cloud Build into Artifact Registry images.
RUNTIME_APIS = {"monitoring.googleapis.com"}
FUNCTION_BUILD_APIS = {"cloudbuild.googleapis.com", "artifactregistry.googleapis.com"}


def _api(resource_type: str) -> str:
    prefixes = [p for p in API_OF_TYPE if resource_type.startswith(p)]
    assert prefixes, f"{resource_type}: which API does it need? Add it to services.tf and API_OF_TYPE"
    return API_OF_TYPE[max(prefixes, key=len)]


def _gcp_module(config: dict[str, Any]) -> dict[str, Any]:
    return config["root_module"]["module_calls"]["gcp"]["module"]


def test_the_gcp_stack_enables_what_it_uses_before_using_it(root_in: Any, infra_copy: Any) -> None:
    render_env(infra_copy, "prod")
    root = root_in("envs/prod")
    local_backend(root.dir)
    root.tf("init", "-input=false", "-no-color")
    root.tf("plan", "-input=false", "-no-color", "-out=services.tfplan")
    plan = root.show_json("services.tfplan")

    gcp = [rc for rc in plan["resource_changes"] if rc["address"].startswith("module.gcp.")]
    services = {
        rc["change"]["after"]["service"]: rc["change"]["after"]
        for rc in gcp
        if rc["type"] == "google_project_service"
    }
    managed_types = {rc["type"] for rc in gcp if rc["mode"] == "managed"}
    assert "google_cloudfunctions2_function" in managed_types  # prod deploys the GCP watchdog
    needed = {_api(t) for t in managed_types} - {"serviceusage.googleapis.com"}
    assert set(services) == needed | RUNTIME_APIS | FUNCTION_BUILD_APIS
    assert all(after["disable_on_destroy"] is False for after in services.values())
    project = json.loads((root.dir / "terraform.tfvars.json").read_text())["gcp"]["project"]
    assert {after["project"] for after in services.values()} == {project}

    # Every module of the stack waits for the APIs (depends_on), so no create races their enablement.
    calls = _gcp_module(plan["configuration"])["module_calls"]
    assert calls, "the GCP stack calls no module"
    for name, call in calls.items():
        assert "google_project_service.this" in call.get("depends_on", []), name
