"""Write the hostile env.yaml corpus: one small file per case, each a valid env with one thing wrong.

Run `python tests/data/bad_inputs/generate.py` after changing a case; commit the .yaml files it writes.
Each NAME.yaml has a NAME.expected beside it: the one line `pyctl validate` prints (stderr, exit 2), with
ENV standing for the file's shown path. The files whose bytes are not text (bad UTF-8, UTF-16...) are
written from here too; the cases that cannot be files in git (a FIFO, a device, a directory, a symlink
loop, an oversized file) are built by tests/foundation/test_bad_inputs.py itself.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent

AWS = """\
env:
  name: hostile
clouds:
  aws:
    account_id: "123456789012"
    region: us-east-1
    vpc_id: vpc-0a1b2c3d4e5f60001
    subnet_ids: [subnet-0a1b2c3d4e5f60011]
backend:
  s3:
    bucket: pyctl-test-tfstate
    key: hostile/terraform.tfstate
    region: us-east-1
pools:
  - name: l4-spot
    cloud: aws
    zones: [us-east-1a]
    instance_type: g6.xlarge
    capacity: spot
    min: 0
    max: 4
    tags:
      team: ml
model_cache:
  aws:
    bucket: pyctl-test-models
tags:
  owner: ml-platform
"""

GCP = """\
env:
  name: hostile
clouds:
  gcp:
    project: acme-ml-hostile
    region: us-central1
    network: gpu
    subnetwork: gpu-us-central1
backend:
  gcs:
    bucket: acme-tfstate-hostile
    prefix: hostile
pools:
  - name: l4-spot
    cloud: gcp
    zones: [us-central1-a]
    instance_type: g2-standard-4
    capacity: spot
    min: 0
    max: 4
    tags:
      team: ml
model_cache:
  gcp:
    bucket: acme-hostile-models
tags:
  owner: ml-platform
"""


def sub(old: str, new: str, base: str = AWS) -> bytes:
    assert base.count(old) == 1, old
    return base.replace(old, new).encode()


def gsub(old: str, new: str) -> bytes:
    return sub(old, new, GCP)


def many_tags(n: int, indent: str = "  ") -> str:
    return "".join(f"{indent}k{i}: v\n" for i in range(n))


BILLION_LAUGHS = "".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n',
        *(f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)),
        "env: *i\n",
    ]
)

CASES: dict[str, Callable[[], bytes]] = {
    # --- bytes that are not UTF-8 text -------------------------------------------------------------
    "bad-utf8-byte": lambda: sub("owner: ml-platform", "owner: ml-\xffplatform").replace(
        b"\xc3\xbf", b"\xff"
    ),
    "latin1-accent": lambda: sub("team: ml", "team: \xe9quipe").replace(b"\xc3\xa9", b"\xe9"),
    "utf16-le-bom": lambda: b"\xff\xfe" + AWS.encode("utf-16-le"),
    "utf16-be-bom": lambda: b"\xfe\xff" + AWS.encode("utf-16-be"),
    "utf32-le-bom": lambda: b"\xff\xfe\x00\x00" + AWS.encode("utf-32-le"),
    "utf8-truncated-sequence": lambda: AWS.encode() + b"# \xe2\x82",
    "utf8-overlong-slash": lambda: sub("owner: ml-platform", "owner: ml-platform\xc0\xaf").replace(
        b"\xc3\x80\xc2\xaf", b"\xc0\xaf"
    ),
    "utf8-encoded-surrogate": lambda: AWS.encode() + b"# \xed\xa0\x80\n",
    "nul-byte": lambda: sub("owner: ml-platform", "owner: ml\x00platform"),
    "terminal-escape-raw": lambda: sub("owner: ml-platform", "owner: \x1b[31mred\x1b[0m"),
    # --- YAML structure --------------------------------------------------------------------------------
    "empty-file": lambda: b"",
    "top-level-list": lambda: b"- env\n- clouds\n",
    "top-level-scalar": lambda: b"just a string\n",
    "multiple-documents": lambda: (AWS + "---\n" + AWS).encode(),
    "mapping-as-key": lambda: sub("  owner: ml-platform", "  ? {a: 1}\n  : x"),
    "list-as-key": lambda: sub("  owner: ml-platform", "  ? [a, b]\n  : x"),
    "flow-list-key": lambda: sub("  owner: ml-platform", "  {[a]: 1}: x"),
    "nesting-5000-flow": lambda: sub("  owner: ml-platform", "  owner: " + "[" * 5000 + "]" * 5000),
    "nesting-40-block": lambda: sub(
        "  owner: ml-platform", "".join(f"{'  ' * (i + 1)}k{i}:\n" for i in range(40)) + "  " * 41 + "x: 1"
    ),
    "billion-laughs": lambda: BILLION_LAUGHS.encode(),
    "recursive-alias": lambda: sub("  owner: ml-platform", "  owner: &loop [*loop]"),
    "duplicate-top-level-key": lambda: (AWS + "tags:\n  x: y\n").encode(),
    "duplicate-pool-key": lambda: sub("    max: 4\n", "    max: 4\n    max: 8\n"),
    "tab-indentation": lambda: sub("    max: 4\n", "\tmax: 4\n"),
    "python-object-tag": lambda: sub("owner: ml-platform", "owner: !!python/object/apply:os.system [id]"),
    "unclosed-quote": lambda: sub("owner: ml-platform", 'owner: "ml-platform'),
    # --- keys and values that would print as something else ----------------------------------------------
    "key-with-newline": lambda: sub("    max: 4\n", '    max: 4\n    "max\\nmin": 1\n'),
    "key-with-zero-width-space": lambda: sub("    max: 4\n", "    max: 4\n    ma\u200bx: 2\n"),
    "key-with-rtl-override": lambda: sub("    max: 4\n", "    max: 4\n    \u202ename: x\n"),
    "key-5000-characters": lambda: sub("    max: 4\n", "    max: 4\n    " + "k" * 5000 + ": 1\n"),
    "value-20000-characters": lambda: sub('"123456789012"', '"' + "1" * 20000 + '"'),
    "value-with-escape-sequence": lambda: sub("name: l4-spot", 'name: "l4\\e[2Jspot"'),
    "pool-name-with-newline": lambda: sub("name: l4-spot", 'name: "l4-spot\\n"'),
    # --- AWS tag rules ------------------------------------------------------------------------------
    "tag-key-129": lambda: sub("  owner: ml-platform", f"  {'k' * 129}: v"),
    "tag-value-257": lambda: sub("  owner: ml-platform", f"  owner: {'v' * 257}"),
    "tag-key-control-char": lambda: sub("  owner: ml-platform", '  "own\\aer": ml-platform'),
    "tag-value-newline": lambda: sub("  owner: ml-platform", '  owner: "ml\\nplatform"'),
    "tag-value-emoji": lambda: sub("  owner: ml-platform", "  owner: ml-\U0001f680"),
    "tag-key-aws-prefix": lambda: sub("  owner: ml-platform", "  aws:owner: ml-platform"),
    "tag-key-aws-prefix-upper": lambda: sub("  owner: ml-platform", "  AWS:Owner: ml-platform"),
    "tag-key-pyctl-prefix": lambda: sub("      team: ml", "      pyctl:pool: other"),
    "tag-key-reserved": lambda: sub("      team: ml", "      Pool: other"),
    "tags-33-on-env": lambda: sub("  owner: ml-platform\n", many_tags(33)),
    "tags-over-budget-with-pool": lambda: sub("      team: ml\n", many_tags(20, "      ")).replace(
        b"  owner: ml-platform\n", many_tags(13).replace("k", "e").encode()
    ),
    "tags-as-list": lambda: sub("  owner: ml-platform", "  - owner"),
    "tag-value-number": lambda: sub("  owner: ml-platform", "  owner: [1, 2]"),
    # --- GCP label rules ----------------------------------------------------------------------------
    "gcp-label-key-digit": lambda: gsub("  owner: ml-platform", "  9owner: ml-platform"),
    "gcp-label-key-underscore": lambda: gsub("      team: ml", "      _team: ml"),
    "gcp-label-key-64": lambda: gsub("  owner: ml-platform", f"  o{'w' * 63}: x"),
    "gcp-label-value-64": lambda: gsub("  owner: ml-platform", f"  owner: {'x' * 64}"),
    "gcp-label-collision": lambda: gsub("  owner: ml-platform", "  CostCenter: a\n  cost_center: b"),
    "gcp-label-collision-pool": lambda: gsub("      team: ml", "      Owner: x"),
    "gcp-labels-55": lambda: gsub("      team: ml\n", many_tags(54, "      ")),
    # --- numbers ------------------------------------------------------------------------------------
    "count-10-pow-30": lambda: sub("max: 4", "max: 1000000000000000000000000000000"),
    "count-1e30-float": lambda: sub("max: 4", "max: 1.0e+30"),
    "count-inf": lambda: sub("max: 4", "max: .inf"),
    "count-negative": lambda: sub("min: 0", "min: -1"),
    "count-fraction": lambda: sub("max: 4", "max: 2.5"),
    "gpus-per-instance-1000": lambda: sub("    max: 4\n", "    max: 4\n    gpus_per_instance: 1000\n"),
    "max-price-nan": lambda: sub("    max: 4\n", "    max: 4\n    spot:\n      max_price: .nan\n"),
    "max-price-inf": lambda: sub("    max: 4\n", "    max: 4\n    spot:\n      max_price: .inf\n"),
    "price-override-1e400": lambda: (
        AWS + "pricing:\n  overrides:\n    g6.xlarge:\n      on_demand_hourly: 1e400\n"
    ).encode(),
    "price-override-negative": lambda: (
        AWS + "pricing:\n  overrides:\n    g6.xlarge:\n      spot_hourly: -0.5\n"
    ).encode(),
    "price-override-huge": lambda: (
        AWS + "pricing:\n  overrides:\n    g6.xlarge:\n      spot_hourly: 1e12\n"
    ).encode(),
    "hours-1e9": lambda: sub("    max: 4\n", "    max: 4\n    expected_hours_per_month: 1e9\n"),
    "watchdog-threshold-nan": lambda: (AWS + "watchdog:\n  threshold_percent: .nan\n").encode(),
    "recovery-window-inf": lambda: (AWS + "spot_recovery:\n  window_hours: .inf\n").encode(),
    "count-boolean": lambda: sub("max: 4", "max: true"),
    "price-boolean": lambda: sub("    max: 4\n", "    max: 4\n    spot:\n      max_price: yes\n"),
    "log-retention-2-days": lambda: (AWS + "watchdog:\n  log_retention_days: 2\n").encode(),
    "port-70000": lambda: sub("    max: 4\n", "    max: 4\n    ingress:\n      ports: [70000]\n"),
    # --- zones and regions by exact match -------------------------------------------------------------
    "zone-trailing-newline": lambda: sub("zones: [us-east-1a]", 'zones: ["us-east-1a\\n"]'),
    "zone-zero-width": lambda: sub("zones: [us-east-1a]", "zones: [us-east-1a\u200b]"),
    "zone-other-region": lambda: sub("zones: [us-east-1a]", "zones: [us-west-2a]"),
    "region-trailing-newline": lambda: sub(
        "    region: us-east-1\n    vpc_id", '    region: "us-east-1\\n"\n    vpc_id'
    ),
    "gcp-zone-trailing-newline": lambda: gsub("zones: [us-central1-a]", 'zones: ["us-central1-a\\n"]'),
    # --- paths --------------------------------------------------------------------------------------
    "backend-key-dotdot": lambda: sub(
        "key: hostile/terraform.tfstate", "key: ../other-env/terraform.tfstate"
    ),
    "backend-key-absolute": lambda: sub("key: hostile/terraform.tfstate", "key: /etc/terraform.tfstate"),
    "gcs-prefix-dotdot": lambda: gsub("prefix: hostile", "prefix: hostile/../prod"),
    "nvme-path-dotdot": lambda: sub(
        "    bucket: pyctl-test-models\n", "    bucket: pyctl-test-models\n  nvme_path: /mnt/../etc\n"
    ),
    "ssm-parameter-dotdot": lambda: sub(
        "    max: 4\n",
        "    max: 4\n    boot_secrets:\n      - env_var: HF_TOKEN\n        ssm_parameter: /ml/../prod/hf-token\n",
    ),
    # --- Terraform template syntax in what reaches HCL ----------------------------------------------------
    "backend-key-interpolation": lambda: sub(
        "key: hostile/terraform.tfstate", 'key: "${path.module}/terraform.tfstate"'
    ),
    "backend-kms-directive": lambda: sub(
        "    region: us-east-1\npools", '    region: us-east-1\n    kms_key_id: "%{if true}x%{endif}"\npools'
    ),
    "tag-value-interpolation": lambda: sub("  owner: ml-platform", '  owner: "${file(\\"/etc/passwd\\")}"'),
    "tag-key-interpolation": lambda: sub("      team: ml", '      "${team}": ml'),
    "cost-center-interpolation": lambda: sub(
        "  name: hostile\n", '  name: hostile\n  cost_center: "${var.x}"\n'
    ),
    "gcp-network-interpolation": lambda: gsub(
        "network: gpu\n", 'network: "${google_compute_network.x.id}"\n'
    ),
}


def main() -> None:
    for old in HERE.glob("*.yaml"):
        old.unlink()
    for name, make in CASES.items():
        (HERE / f"{name}.yaml").write_bytes(make())


if __name__ == "__main__":
    main()
