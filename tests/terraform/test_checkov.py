"""checkov over all of infra/: zero failed checks, and every skip carries a written reason in the code."""

from __future__ import annotations

import re
from typing import Any

from .tfconfig import INFRA, REPO_ROOT

SKIP_COMMENT = re.compile(r"checkov:skip=([^\s:]*)(?::(.*))?")
CHECK_ID = re.compile(r"^CKV2?_[A-Z0-9]+_\d+$")


def test_checkov_finds_no_failed_checks(checkov_report: dict[str, Any]) -> None:
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
        for c in checkov_report["failed_checks"]
    ]
    assert failed == []
    # A run that checked nothing would pass too: make sure the GPU pool and the cache were scanned.
    passed = {(c["check_id"], c["resource"].rsplit(".", 2)[-2]) for c in checkov_report["passed_checks"]}
    assert ("CKV_AWS_79", "aws_launch_template") in passed  # IMDSv2
    assert ("CKV_AWS_341", "aws_launch_template") in passed  # hop limit 1
    assert ("CKV_AWS_145", "aws_s3_bucket") in passed  # SSE-KMS


def test_every_skip_in_the_code_has_a_check_id_and_a_reason() -> None:
    problems = []
    for path in sorted(INFRA.rglob("*.tf")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            match = SKIP_COMMENT.search(line)
            if not match:
                continue
            check_id, reason = match.group(1), (match.group(2) or "").strip()
            where = f"{path.relative_to(REPO_ROOT)}:{number}"
            if not CHECK_ID.match(check_id):
                problems.append(f"{where}: {check_id!r} is not a checkov check id")
            if len(reason.split()) < 4:
                problems.append(
                    f"{where}: skip of {check_id} needs a written reason (`#checkov:skip=ID:why`)"
                )
    assert problems == []


def test_every_skip_checkov_applied_came_with_its_reason(checkov_report: dict[str, Any]) -> None:
    for check in checkov_report["skipped_checks"]:
        reason = (check["check_result"].get("suppress_comment") or "").strip()
        assert len(reason.split()) >= 4, (
            f"{check['check_id']} on {check['resource']} skipped without a reason"
        )
