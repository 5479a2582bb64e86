"""The pull-request comment a reviewer acts on: attribute diffs (sensitive values masked), the env's monthly
total, the --fail-above limit, next steps with the run link, the failure report, and the size limit."""

from __future__ import annotations

import dataclasses

import pytest

from pyctl.core.plan import Plan
from pyctl.core.plan_diff import SENSITIVE, UNKNOWN, resource_diff
from pyctl.core.plan_summary import (
    MARKDOWN_LIMIT,
    CiRun,
    MonthlyTotals,
    ci_run_from_env,
    cost_limit_refusal,
    render_failure_markdown,
    render_markdown,
    render_text,
    summarize,
)

CI = CiRun(url="https://github.com/acme/gpu/actions/runs/987", run_id="987")


def rc(address, actions, before=None, after=None, **change):
    return {
        "address": address,
        "mode": "managed",
        "type": address.split(".")[-2],
        "name": address.split(".")[-1],
        "change": {"actions": actions, "before": before, "after": after, **change},
    }


def doc(*changes, pools_before=None, pools_after=None):
    d = {"format_version": "1.2", "terraform_version": "1.15.5", "resource_changes": list(changes)}
    if pools_before is not None:
        d["output_changes"] = {
            "gpu_capacity": {
                "actions": ["update"],
                "before": pools_before,
                "after": pools_after,
                "after_unknown": False,
            }
        }
    return d


def pool(instances, capacity="spot", itype="g6.xlarge"):
    return {
        "cloud": "aws",
        "capacity": capacity,
        "instance_type": itype,
        "gpu": "l4",
        "gpus_per_instance": 1,
        "instances": instances,
    }


UPDATE = rc(
    "module.pool.aws_launch_template.gpu",
    ["update"],
    before={"image_id": "ami-old", "tags": {"team": "ml"}, "user_data": "c2VjcmV0", "ebs": [{"size": 100}]},
    after={"image_id": "ami-new", "tags": {"team": "ml", "cost-center": "42"}, "user_data": "c2VjcmV0Mg=="},
    after_unknown={"latest_version": True},
    before_sensitive={"user_data": True},
    after_sensitive={"user_data": True},
)


def test_attribute_diff_masks_sensitive_values_and_marks_unknowns():
    (diff,) = summarize(Plan.from_json(doc(UPDATE)), env="prod", protected=False).diffs
    lines = [c.line() for c in diff.changes]
    assert lines == [
        '! image_id: "ami-old" -> "ami-new"',
        '+ tags.cost-center = "42"',
        f"! user_data: {SENSITIVE} -> {SENSITIVE}",
        f"+ latest_version = {UNKNOWN}",
        "- ebs[0].size = 100",
    ]


def test_a_sensitive_value_that_did_not_change_is_not_listed_and_never_shown():
    same = dataclasses.replace(
        Plan.from_json(doc(UPDATE)).changes[0],
        after={**UPDATE["change"]["before"], "image_id": "ami-new"},
        after_unknown={},
    )
    assert [c.path for c in resource_diff(same).changes] == ["image_id"]
    md = render_markdown(summarize(Plan.from_json(doc(UPDATE)), env="prod", protected=False))
    assert "c2VjcmV0" not in md  # the plan JSON holds sensitive values in clear text


def test_create_lists_its_attributes_replace_marks_what_forces_it_delete_lists_none():
    create = rc(
        "aws_s3_bucket.models",
        ["create"],
        after={"bucket": "acme-models", "force_destroy": False, "tags": None},
        after_unknown={"arn": True, "id": True},
    )
    replace = rc(
        "aws_instance.gpu",
        ["delete", "create"],
        before={"instance_type": "g6.xlarge", "ami": "ami-1"},
        after={"instance_type": "g6.2xlarge", "ami": "ami-1"},
        replace_paths=[["instance_type"]],
    )
    delete = rc("aws_iam_role.old", ["delete"], before={"name": "old"})
    diffs = {
        d.address: [c.line() for c in d.changes]
        for d in (resource_diff(r) for r in Plan.from_json(doc(create, replace, delete)).changes)
    }
    assert diffs == {
        "aws_s3_bucket.models": [
            '+ bucket = "acme-models"',
            "+ force_destroy = false",
            f"+ arn = {UNKNOWN}",
            f"+ id = {UNKNOWN}",
        ],
        "aws_instance.gpu": ['! instance_type: "g6.xlarge" -> "g6.2xlarge"  # forces replacement'],
        "aws_iam_role.old": [],
    }


def test_each_changed_resource_is_a_collapsible_block_and_a_value_cannot_close_the_fence():
    tricky = rc("aws_ssm_parameter.doc", ["update"], before={"value": "a"}, after={"value": "```\nb"})
    md = render_markdown(summarize(Plan.from_json(doc(UPDATE, tricky)), env="prod", protected=False))
    assert (
        "<details><summary><code>~ module.pool.aws_launch_template.gpu</code>: update, 5 attributes</summary>"
        in md
    )
    assert '````diff\n! value: "a" -> "```\\nb"\n````' in md


def test_monthly_total_before_after_and_percent():
    summary = summarize(
        Plan.from_json(doc()), env="prod", protected=False, monthly=MonthlyTotals(12_000.0, 15_000.0)
    )
    assert "**Monthly cost of `prod`**: $12,000 → $15,000 (+$3,000, +25.0%)" in render_markdown(summary)
    assert "Monthly cost of env prod: $12,000 -> $15,000 (+$3,000, +25.0%)" in render_text(summary)
    unchanged = dataclasses.replace(summary, monthly=MonthlyTotals(800.0, 800.0, ("odd-pool",)))
    assert "$800 (unchanged); not priced: odd-pool" in render_text(unchanged)
    new_env = dataclasses.replace(summary, monthly=MonthlyTotals(0.0, 500.0))
    assert "$0.00 -> $500 (+$500, new)" in render_text(new_env)


def _priced_summary(fail_above):
    from pyctl.catalog.prices import plan_cost

    parsed = Plan.from_json(doc(pools_before={"l4": pool(2)}, pools_after={"l4": pool(6)}))
    summary = summarize(parsed, env="dev", protected=False, cost_change=plan_cost(parsed))
    return dataclasses.replace(summary, fail_above=fail_above)


def test_fail_above_refuses_a_rise_over_the_limit_and_says_so_in_the_comment():
    rise = _priced_summary(None).cost_change.total
    assert rise > 0
    assert cost_limit_refusal(_priced_summary(None)) is None
    assert cost_limit_refusal(_priced_summary(rise + 1)) is None
    over = _priced_summary(rise - 1)
    refusal = cost_limit_refusal(over)
    assert refusal and refusal.startswith("the plan raises env dev's monthly cost by $")
    assert f"> This check fails: {refusal}." in render_markdown(over)
    assert "- The cost check fails, so this plan is not uploaded for apply" in render_markdown(over)
    assert "Within the monthly cost limit" in render_markdown(_priced_summary(rise + 1))


def test_fail_above_refuses_what_it_cannot_price():
    parsed = Plan.from_json(
        doc(pools_before={"x": pool(1, itype="p9.huge")}, pools_after={"x": pool(3, itype="p9.huge")})
    )
    from pyctl.catalog.prices import plan_cost

    summary = summarize(parsed, env="dev", protected=False, cost_change=plan_cost(parsed))
    refusal = cost_limit_refusal(dataclasses.replace(summary, fail_above=1000.0))
    assert refusal and refusal.startswith("cannot check --fail-above $1,000: no monthly cost for pool(s) x")


def test_next_steps_name_the_apply_path_the_gates_and_the_run():
    gated = rc("aws_s3_bucket.models", ["delete"], before={"bucket": "m"})
    md = render_markdown(summarize(Plan.from_json(doc(gated)), env="prod", protected=True), ci=CI)
    assert (
        "applies exactly this plan (artifact `plan-prod` of [run 987](https://github.com/acme/gpu/actions/runs/987))"
        in md
    )
    assert "add the PR label `allow-destroy` before merging" in md
    assert "`gh run rerun 987`" in md and md.rstrip().endswith(
        "[Plan run 987](https://github.com/acme/gpu/actions/runs/987)"
    )
    empty = render_markdown(summarize(Plan.from_json(doc()), env="prod", protected=False), ci=CI)
    assert "Nothing to apply" in empty


def test_ci_run_comes_from_the_runner_variables():
    env = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "acme/gpu", "GITHUB_RUN_ID": "987"}
    assert ci_run_from_env(env) == CI
    assert ci_run_from_env({}) is None


def test_failure_report_names_the_stage_the_error_and_the_run():
    md = render_failure_markdown(
        "prod", "init", "terraform init failed: Error: Failed to query provider", ci=CI
    )
    assert md.startswith(
        "<!-- pyctl-plan-summary env=prod -->\n### :x: pyctl plan: `prod` failed while `terraform init`"
    )
    assert "```text\nterraform init failed: Error: Failed to query provider\n```" in md
    assert "[Run log](https://github.com/acme/gpu/actions/runs/987)" in md
    huge = render_failure_markdown("prod", "plan", "x" * 100_000)
    assert len(huge) < MARKDOWN_LIMIT and "(cut; see the run log)" in huge


def _big_plan(resources, attributes):
    changes = [
        rc(
            f"module.pool_{i:04d}.aws_launch_template.gpu",
            ["update"],
            before={f"attr_{j:03d}": "old-" + "v" * 40 for j in range(attributes)},
            after={f"attr_{j:03d}": "new-" + "v" * 40 for j in range(attributes)},
        )
        for i in range(resources)
    ]
    return summarize(
        Plan.from_json(doc(*changes, pools_before={"l4": pool(2)}, pools_after={"l4": pool(4)})),
        env="prod",
        protected=False,
        monthly=MonthlyTotals(1000.0, 2000.0),
    )


@pytest.mark.parametrize("limit", [MARKDOWN_LIMIT, 65_536])
def test_at_the_limit_diffs_are_cut_first_and_the_rest_is_kept(limit):
    summary = _big_plan(resources=300, attributes=20)
    assert len(render_markdown(summary, max_chars=10**9, ci=CI)) > limit  # really too long
    md = render_markdown(summary, max_chars=limit, ci=CI)
    assert len(md) <= limit
    assert md.count("<details><summary><code>") > 10  # as many whole diffs as fit
    assert "more resource(s) left out to fit GitHub's comment limit" in md
    assert "... and" not in md  # the resource list itself is whole
    assert "| 0 | 300 | 0 | 0 | 0 |" in md and "#### Next steps" in md and "$1,000 → $2,000" in md
    assert md.count("<details>") == md.count("</details>")  # no block cut in half


def test_one_resource_with_many_attributes_is_capped():
    md = render_markdown(_big_plan(resources=1, attributes=200))
    assert "# ... and 140 more attributes (see the plan artifact)" in md


def test_when_even_the_list_is_too_long_lists_are_cut_after_all_diffs():
    md = render_markdown(_big_plan(resources=3000, attributes=2))
    assert len(md) <= MARKDOWN_LIMIT
    assert "<details><summary><code>" not in md and "more (see the plan artifact)" in md


# --- through the CLI, on real Terraform core with the fixture env (S3 state on moto) ----------------------


def test_plan_over_the_cost_limit_writes_the_comment_then_fails(fixture_env, pyctl, tmp_path, monkeypatch):
    from pyctl.errors import PyctlError

    for name, value in (
        ("GITHUB_SERVER_URL", "https://github.com"),
        ("GITHUB_REPOSITORY", "acme/gpu"),
        ("GITHUB_RUN_ID", "987"),
    ):
        monkeypatch.setenv(name, value)
    comment = tmp_path / "comment.md"
    with pytest.raises(
        PyctlError,
        match=r"^the plan raises env wf-test's monthly cost by \$[\d,]+, more than --fail-above \$1\.00$",
    ) as refused:
        pyctl("plan", "--env", fixture_env.dir, "--fail-above", "1", "--summary-md", comment)
    assert refused.value.exit_code == 1
    md = comment.read_text()
    assert "> This check fails: the plan raises env wf-test's monthly cost" in md
    assert "**Monthly cost of `wf-test`**: $0.00 → $" in md and "new)" in md
    assert "[Plan run 987](https://github.com/acme/gpu/actions/runs/987)" in md
    assert "<details><summary><code>+ terraform_data." in md  # attribute diffs of the created resources
    # under a limit it would not cross, the same plan passes
    assert (
        pyctl("plan", "--env", fixture_env.dir, "--fail-above", "10000000", "--summary-md", comment).exit_code
        == 0
    )
    assert "Within the monthly cost limit" in comment.read_text()


def test_an_invalid_env_yaml_becomes_a_failure_comment(fixture_env, pyctl, tmp_path):
    from pyctl.errors import PyctlError

    fixture_env.edit(lambda spec: spec["pools"][0].update(instance_type="p5.nope"))
    comment = tmp_path / "out" / "comment.md"
    with pytest.raises(PyctlError) as refused:
        pyctl("plan", "--env", fixture_env.dir, "--summary-md", comment)
    assert refused.value.exit_code == 2
    md = comment.read_text()
    assert md.startswith(
        "<!-- pyctl-plan-summary env=wf-test -->\n### :x: pyctl plan: `wf-test` failed while validating"
    )
    assert str(refused.value).splitlines()[0] in md
