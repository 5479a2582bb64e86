"""The node bootstrap (infra/modules/aws-gpu-pool/templates/bootstrap.sh.tftpl), rendered by Terraform's own templatefile() with the
values the pool module passes, then checked with shellcheck and for what a node must do at boot."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# The template's variables, as infra/modules/aws-gpu-pool/main.tf passes them (test_aws_security checks the
# key set matches the module).
SAMPLE: dict[str, Any] = {
    "env": "prod",
    "pool": "h100-spot-burst",
    "capacity": "spot",
    "region": "us-east-1",
    "bucket": "acme-prod-gpu-models",
    "key_prefix": "",
    "model_name": "llama-3-70b-instruct",
    "model_version": "2024-07-23",
    "nvme_path": "/mnt/nvme",
    "agent_bundle_bucket": "acme-prod-gpu-models",
    "agent_bundle_key": "agent/" + "ab" * 32 + ".tar.gz",
    "agent_bundle_sha256": "ab" * 32,
    "spot_watch": True,
    "checkpoint_keep": 5,
    "secrets": [
        {"env_var": "HF_TOKEN", "source": "ssm", "name": "/pyctl/prod/hf-token"},
        {"env_var": "WANDB_API_KEY", "source": "secretsmanager", "name": "prod/wandb"},
    ],
    "cloudwatch_namespace": "CWAgent",
    "metrics_interval": 60,
}
ON_DEMAND = {
    **SAMPLE,
    "capacity": "on_demand",
    "spot_watch": False,
    "model_name": "",
    "model_version": "",
    "secrets": [],
}

SHELLCHECK = Path(sys.executable).parent / "shellcheck"


@pytest.fixture(scope="module")
def spot_script(render_bootstrap) -> str:
    return render_bootstrap(SAMPLE)


@pytest.fixture(scope="module")
def on_demand_script(render_bootstrap) -> str:
    return render_bootstrap(ON_DEMAND)


def _shellcheck(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "user-data.sh"
    path.write_text(script)
    return subprocess.run(
        [str(SHELLCHECK), "--shell=bash", "--severity=style", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("kind", ["spot", "on_demand"])
def test_rendered_bootstrap_is_shellcheck_clean(
    kind: str, spot_script: str, on_demand_script: str, tmp_path: Path
) -> None:
    script = spot_script if kind == "spot" else on_demand_script
    proc = _shellcheck(script, tmp_path)
    assert proc.returncode == 0, proc.stdout


def test_shellcheck_would_catch_a_broken_script(tmp_path: Path) -> None:
    assert _shellcheck("#!/bin/bash\necho $1\nrm -rf $DIR/\n", tmp_path).returncode != 0


def test_bootstrap_mounts_nvme_as_raid0_when_there_are_several_disks(spot_script: str) -> None:
    assert "nvme-Amazon_EC2_NVMe_Instance_Storage_" in spot_script
    assert re.search(r"mdadm --create .*--level=0", spot_script)
    assert "mkfs.xfs" in spot_script
    assert "readonly NVME_PATH='/mnt/nvme'" in spot_script


def test_cloudwatch_agent_collects_gpu_metrics_per_instance(spot_script: str) -> None:
    config = spot_script.split("<<'JSON'\n", 1)[1].split("\nJSON\n", 1)[0]
    config = (
        config.replace("@NAMESPACE@", "CWAgent")
        .replace("@INTERVAL@", "60")
        .replace("@NVME_PATH@", "/mnt/nvme")
    )
    parsed = json.loads(config)
    metrics = parsed["metrics"]
    assert metrics["namespace"] == "CWAgent"
    assert metrics["append_dimensions"] == {"InstanceId": "${aws:InstanceId}"}
    assert "utilization_gpu" in metrics["metrics_collected"]["nvidia_gpu"]["measurement"]
    assert "amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s" in spot_script.replace(
        '"$ctl"', "amazon-cloudwatch-agent-ctl"
    )


def test_spot_pool_fetches_its_model_and_runs_the_spot_watcher(spot_script: str) -> None:
    assert "readonly MODEL_NAME='llama-3-70b-instruct'" in spot_script
    assert re.search(
        r"pyctl-agent fetch-model \$MODEL_NAME --version \$MODEL_VERSION --to .* --bucket", spot_script
    )
    assert re.search(
        r"pyctl-agent watch --job \$job --checkpoint-dir .* --bucket \$CACHE_BUCKET", spot_script
    )
    main = spot_script.split("main() {", 1)[1]
    assert "  fetch_model\n" in main and '  start_spot_watcher "$job"\n' in main
    # The watcher is installed before the model fetch starts.
    assert main.index("start_spot_watcher") < main.index("fetch_model")
    assert f"readonly BUNDLE_SHA256='{'ab' * 32}'" in spot_script
    # The fetch takes minutes: user data enables the units and does not wait for them.
    assert 'systemctl start --no-block "$name"' in spot_script and "enable --now" not in spot_script


def test_on_demand_pool_without_model_runs_neither_fetch_nor_watcher(on_demand_script: str) -> None:
    main = on_demand_script.split("main() {", 1)[1]
    assert "  fetch_model\n" not in main
    assert "  start_spot_watcher" not in main
    assert "  load_secrets\n" in main


def test_secrets_are_named_never_valued(spot_script: str, render_bootstrap) -> None:
    assert (
        "readonly BOOT_SECRETS=('HF_TOKEN=ssm:/pyctl/prod/hf-token' 'WANDB_API_KEY=secretsmanager:prod/wandb' )"
        in spot_script
    )
    assert 'install -m 0600 /dev/null "$SECRETS_FILE"' in spot_script
    assert "get_parameter(Name=name, WithDecryption=True)" in spot_script
    # Whatever the names, the rendered user data holds nothing that looks like a credential.
    for pattern in (r"hf_[A-Za-z0-9]{30,}", r"AKIA[0-9A-Z]{16}", r"-----BEGIN", r"(?i)password\s*="):
        assert not re.search(pattern, spot_script), pattern


def test_user_data_fits_the_ec2_limit(spot_script: str) -> None:
    # EC2 refuses user data above 16 KB (before base64); the launch template sends this script as is.
    assert len(spot_script.encode()) < 16 * 1024


def _exec_start_argv(script: str, unit: str) -> list[str]:
    """The ExecStart of a unit the script installs, with the script's readonly values substituted."""
    values = dict(re.findall(r"^readonly (\w+)='([^']*)'$", script, flags=re.M))
    values.update(dict(re.findall(r"^readonly (\w+)=(/\S+)$", script, flags=re.M)))
    values["job"] = SAMPLE["pool"]  # the pyctl:job tag the node reads through IMDS (no spot_job set)
    body = script.split(f"install_unit {unit} <<UNIT\n", 1)[1].split("\nUNIT\n", 1)[0]
    command = next(line for line in body.splitlines() if line.startswith("ExecStart="))
    command = command.removeprefix("ExecStart=").replace("${prefix_arg[*]}", "")
    command = re.sub(r"\$(\w+)", lambda m: values[m.group(1)], command)
    argv = command.split()
    assert argv[0] == "/usr/local/bin/pyctl-agent"
    return argv[1:]


@pytest.mark.parametrize(
    ("unit", "command"),
    [
        ("pyctl-spot-watch.service", "watch"),
        ("pyctl-fetch-model.service", "fetch-model"),
        ("pyctl-resume.service", "resume"),
    ],
)
def test_units_call_pyctl_agent_with_options_it_accepts(spot_script: str, unit: str, command: str) -> None:
    from pyctl.agent.cli import main

    argv = _exec_start_argv(spot_script, unit)
    assert argv[0] == command
    # Parse only (no run): an unknown option, a missing required one or a bad job name raises here.
    ctx = main.commands[command].make_context(command, argv[1:])
    assert ctx.params["bucket"] == "acme-prod-gpu-models"
    if command == "watch":
        assert ctx.params["job"] == "h100-spot-burst"
        assert str(ctx.params["checkpoint_dir"]) == "/mnt/nvme/checkpoints/h100-spot-burst"
        assert ctx.params["keep"] == 5  # env.yaml's spot_recovery.checkpoint_retention
    elif command == "resume":
        assert ctx.params["job"] == "h100-spot-burst"
        assert str(ctx.params["env_file"]) == "/run/pyctl/resume.env"  # the training unit's EnvironmentFile
    else:
        assert (ctx.params["name"], ctx.params["version"]) == ("llama-3-70b-instruct", "2024-07-23")
