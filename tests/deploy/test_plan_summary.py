"""Plan model, summary, Markdown and safety gates over `terraform show -json` documents (pure)."""

from __future__ import annotations

import pytest

from pyctl.core.plan import Plan
from pyctl.core.plan_gates import gate_refusals
from pyctl.core.plan_summary import MARKDOWN_LIMIT, render_markdown, render_text, summarize


def rc(address, actions, before=None, after=None, type_=None):
    """One resource_changes entry as terraform writes it."""
    type_ = type_ or address.split(".")[-2]
    return {
        "address": address,
        "module_address": address.rsplit(".", 2)[0] if address.startswith("module.") else "",
        "mode": "managed",
        "type": type_,
        "name": address.split(".")[-1].split("[")[0],
        "provider_name": "registry.terraform.io/hashicorp/aws",
        "change": {"actions": actions, "before": before, "after": after, "after_unknown": {}},
    }


def pool(capacity, instance_type, gpu, gpus, desired, cloud="aws"):
    return {
        "cloud": cloud,
        "capacity": capacity,
        "instance_type": instance_type,
        "gpu": gpu,
        "gpus_per_instance": gpus,
        "instances": desired,
    }


def plan_doc(changes=(), pools_before=None, pools_after=None, after_unknown=False):
    doc = {"format_version": "1.2", "terraform_version": "1.15.5", "resource_changes": list(changes)}
    if pools_before is not None or pools_after is not None:
        doc["output_changes"] = {
            "gpu_capacity": {
                "actions": ["update"],
                "before": pools_before,
                "after": None if after_unknown else pools_after,
                "after_unknown": after_unknown,
            }
        }
    return doc


def summary_of(doc, protected=False, env="prod"):
    return summarize(Plan.from_json(doc), env=env, protected=protected)


def test_actions_are_counted_with_replacements_separated():
    doc = plan_doc(
        [
            rc("aws_launch_template.gpu", ["update"]),
            rc("module.pool.aws_autoscaling_group.this", ["delete", "create"]),
            rc("aws_iam_role.node", ["create"]),
            rc("aws_iam_role.old", ["delete"]),
            rc("aws_s3_bucket_policy.cache", ["no-op"]),
            rc("data.aws_ami.gpu", ["read"]),
            rc("aws_instance.legacy", ["forget"]),
        ]
    )
    summary = summary_of(doc)
    assert dict(summary.counts) == {"create": 1, "update": 1, "replace": 1, "delete": 1, "forget": 1}
    assert summary.replacements == ("module.pool.aws_autoscaling_group.this",)
    text = render_text(summary)
    assert "Plan: 1 to create, 1 to update, 1 to replace, 1 to delete, 1 to forget." in text
    assert "Replacements (destroy, then create):\n  ~ module.pool.aws_autoscaling_group.this" in text


def test_gpu_capacity_change_per_pool_and_by_type_and_kind():
    before = {
        "h100": pool("reserved", "p5.48xlarge", "h100", 8, 2),
        "burst": pool("spot", "p5.48xlarge", "h100", 8, 4),
        "old": pool("on_demand", "g5.xlarge", "a10g", 1, 3),
    }
    after = {
        "h100": pool("reserved", "p5.48xlarge", "h100", 8, 2),  # unchanged: not listed
        "burst": pool("spot", "p5.48xlarge", "h100", 8, 1),
        "l4": pool("spot", "g2-standard-8", "l4", 1, 5, cloud="gcp"),
    }
    summary = summary_of(plan_doc(pools_before=before, pools_after=after))

    assert [c.pool for c in summary.pool_changes] == ["burst", "l4", "old"]
    assert summary.gpu_totals() == {
        ("a10g", "g5.xlarge", "on_demand"): (-3, -3),
        ("h100", "p5.48xlarge", "spot"): (-3, -24),
        ("l4", "g2-standard-8", "spot"): (5, 5),
    }
    text = render_text(summary)
    assert "  -24 h100 GPUs (-3 x p5.48xlarge, spot)" in text
    assert "  burst [aws spot, p5.48xlarge, 8x h100]: 4 -> 1 instances (-3), -24 GPUs" in text
    assert "  l4 (new pool) [gcp spot, g2-standard-8, 1x l4]: 0 -> 5 instances (+5), +5 GPUs" in text
    assert "  old (pool removed) [aws on_demand, g5.xlarge, 1x a10g]: 3 -> 0 instances (-3), -3 GPUs" in text
    assert summary.findings == ()  # no reserved capacity lost, not protected


def test_unknown_pool_sizes_say_so():
    summary = summary_of(
        plan_doc(
            pools_before={"a": pool("spot", "g6.xlarge", "l4", 1, 1)}, pools_after=None, after_unknown=True
        )
    )
    assert "a (aws spot): 1 -> (known after apply)" in render_text(summary)


@pytest.mark.parametrize(
    ("change", "protected", "kind", "gate", "message"),
    [
        (
            rc("aws_ec2_capacity_reservation.h100", ["delete"]),
            True,
            "reserved_capacity",
            "allow_destroy",
            "DESTROYS reserved GPU capacity",
        ),
        (
            rc("aws_ec2_capacity_reservation.h100", ["delete", "create"]),
            False,
            "reserved_capacity",
            "",
            "REPLACES reserved GPU capacity",
        ),
        (
            rc("google_compute_reservation.a3", ["delete"]),
            True,
            "reserved_capacity",
            "allow_destroy",
            "DESTROYS reserved",
        ),
        (
            rc("module.cache.aws_s3_bucket.models", ["delete"]),
            True,
            "bucket",
            "allow_destroy",
            "models or checkpoints",
        ),
        (
            rc("google_storage_bucket.ckpt", ["create", "delete"]),
            True,
            "bucket",
            "allow_destroy",
            "REPLACES a bucket",
        ),
        (
            rc("aws_iam_role.node", ["delete"]),
            True,
            "protected",
            "",
            "DESTROYS a resource in a protected env",
        ),
        (
            rc(
                "aws_ec2_capacity_block_reservation.burst",
                ["create"],
                after={"instance_count": 4, "instance_type": "p5.48xlarge"},
            ),
            False,
            "capacity_block",
            "confirm_purchase",
            "BUYS an EC2 capacity block (4 x p5.48xlarge); destroy cannot undo the purchase",
        ),
    ],
)
def test_dangerous_changes_are_flagged(change, protected, kind, gate, message):
    (finding,) = summary_of(plan_doc([change]), protected=protected).findings
    assert (finding.kind, finding.gate) == (kind, gate)
    assert message in finding.message


def test_plain_destroys_outside_protected_envs_are_not_flagged():
    assert (
        summary_of(
            plan_doc([rc("aws_iam_role.node", ["delete"]), rc("aws_s3_bucket.x", ["create"])])
        ).findings
        == ()
    )


def test_shrinking_or_retyping_reserved_pools_releases_reserved_capacity():
    before = {"r": pool("reserved", "p5.48xlarge", "h100", 8, 2), "s": pool("spot", "g6.xlarge", "l4", 1, 2)}
    for after in (
        {"r": pool("reserved", "p5.48xlarge", "h100", 8, 1)},
        {"r": pool("reserved", "p5e.48xlarge", "h200", 8, 2)},
        {"r": pool("on_demand", "p5.48xlarge", "h100", 8, 2)},
        {},
    ):
        (finding,) = summary_of(plan_doc(pools_before=before, pools_after=after), protected=True).findings
        assert (finding.kind, finding.address, finding.gate) == (
            "reserved_capacity",
            "pool r",
            "allow_destroy",
        )
    grown = {"r": pool("reserved", "p5.48xlarge", "h100", 8, 3)}
    assert summary_of(plan_doc(pools_before=before, pools_after=grown), protected=True).findings == ()


@pytest.mark.parametrize(
    ("allow_destroy", "confirm_purchase", "refused"),
    [
        (False, False, ["protected", "capacity block"]),
        (True, False, ["capacity block"]),
        (False, True, ["protected"]),
        (True, True, []),
    ],
)
def test_gates(allow_destroy, confirm_purchase, refused):
    doc = plan_doc(
        [
            rc("aws_ec2_capacity_reservation.h100", ["delete"]),
            rc(
                "aws_ec2_capacity_block_reservation.b",
                ["create"],
                after={"instance_count": 1, "instance_type": "p5.48xlarge"},
            ),
        ]
    )
    refusals = gate_refusals(
        summary_of(doc, protected=True), allow_destroy=allow_destroy, confirm_purchase=confirm_purchase
    )
    assert len(refusals) == len(refused)
    for text, word in zip(refusals, refused, strict=True):
        assert word in text


def test_destroys_in_unprotected_envs_need_no_flag():
    doc = plan_doc(
        [rc("aws_ec2_capacity_reservation.h100", ["delete"]), rc("aws_s3_bucket.models", ["delete"])]
    )
    assert gate_refusals(summary_of(doc, protected=False), allow_destroy=False, confirm_purchase=False) == []


def test_markdown_has_counts_pools_findings_and_marker():
    doc = plan_doc(
        [rc("aws_s3_bucket.models", ["delete"]), rc("aws_autoscaling_group.burst", ["update"])],
        pools_before={"burst": pool("spot", "p5.48xlarge", "h100", 8, 4)},
        pools_after={"burst": pool("spot", "p5.48xlarge", "h100", 8, 6)},
    )
    md = render_markdown(summary_of(doc, protected=True, env="prod"))
    assert md.startswith("<!-- pyctl-plan-summary env=prod -->\n### :warning: pyctl plan: `prod` (protected)")
    assert "| 0 | 1 | 0 | 1 | 0 |" in md
    assert "> - **aws_s3_bucket.models**: DESTROYS a bucket that may hold models or checkpoints" in md
    assert "> Applying this plan needs --allow-destroy (protected env)." in md
    assert "- **+16 h100 GPUs (+2 x p5.48xlarge, spot)**" in md
    assert "| burst | aws | spot | p5.48xlarge (8x h100) | 4 → 6 | +16 |" in md
    assert "- aws_s3_bucket.models\n~ aws_autoscaling_group.burst" in md


def test_huge_plans_are_truncated_under_the_limit_with_totals_kept():
    changes = [
        rc(f"module.pool_{i:05d}.aws_instance.gpu_with_a_rather_long_name", ["delete"]) for i in range(6000)
    ]
    summary = summary_of(plan_doc(changes), protected=True)
    md = render_markdown(summary)

    assert len(md) <= MARKDOWN_LIMIT
    assert "| 0 | 0 | 0 | 6000 | 0 |" in md
    assert "6000 resource changes" in md
    assert "more (see the plan artifact)" in md
    assert len(render_markdown(summary, max_chars=10**9)) > MARKDOWN_LIMIT  # really was too long


def test_an_empty_plan():
    summary = summary_of(plan_doc())
    assert (
        render_text(summary)
        == "Plan for env prod\nPlan: 0 to create, 0 to update, 0 to replace, 0 to delete.\n"
    )
    assert "No resource changes." in render_markdown(summary)
    assert not Plan.from_json(plan_doc()).has_changes
