"""Provider- and API-side value rules our HCL depends on, each from the documentation it cites.

Terraform core cannot know these (they live in the provider or behind the API), so without them the stand-in
would accept an apply that AWS or GCP rejects. Only rules the code depends on are listed; each is a fact
with its source, not a guess.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import cty


@dataclass(frozen=True)
class Rule:
    resource: str
    attribute: str
    check: Callable[[Any], bool]
    message: str
    source: str


# EC2 security group and rule descriptions: up to 255 characters of a-zA-Z0-9, space and ._-:/()#,@[]+=&;{}!$*
# (EC2 API reference: CreateSecurityGroup GroupDescription, IpPermission/SecurityGroupRule Description).
_SG_DESCRIPTION = re.compile(r"^[a-zA-Z0-9. _\-:/()#,@\[\]+=&;{}!$*]{0,255}$")


def _sg_description(value: Any) -> bool:
    return isinstance(value, str) and bool(_SG_DESCRIPTION.fullmatch(value))


RULES: tuple[Rule, ...] = tuple(
    Rule(
        resource,
        "description",
        _sg_description,
        "EC2 allows only a-zA-Z0-9, spaces and ._-:/()#,@[]+=&;{}!$* (at most 255 characters) here",
        "EC2 API reference, CreateSecurityGroup / SecurityGroupRuleRequest: Description",
    )
    for resource in (
        "aws_security_group",
        "aws_security_group_rule",
        "aws_vpc_security_group_ingress_rule",
        "aws_vpc_security_group_egress_rule",
    )
)


def violations(type_name: str, config: Any) -> list[tuple[str, str, tuple[str, ...]]]:
    if not isinstance(config, dict):
        return []
    out = []
    for rule in RULES:
        if rule.resource != type_name:
            continue
        value = config.get(rule.attribute)
        if value is None or cty.is_unknown(value):
            continue
        if not rule.check(value):
            out.append(
                (f"invalid {rule.attribute} {value!r}", f"{rule.message} ({rule.source}).", (rule.attribute,))
            )
    return out
