"""The documented EC2 RunInstances and Auto Scaling UpdateAutoScalingGroup rules our code depends on, enforced
on a boto3 client (moto accepts
requests AWS rejects: ../shared/ARCHITECTURE.md, "moto accepts ... a top-level SubnetId when the launch
template defines network interfaces").

`enforce(ec2)` registers a botocore `before-parameter-build.ec2.RunInstances` handler that inspects the
request as the caller gave it and, when a rule is broken, raises the ClientError AWS would answer
(`InvalidParameterCombination` / `InvalidParameterValue`), so the code under test sees what it would
see on AWS. Each rule names its source: the RunInstances API reference,
https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_RunInstances.html (request parameters
`SubnetId`, `SecurityGroupIds`, `SecurityGroups`, `NetworkInterface.N`) and
https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_InstanceNetworkInterfaceSpecification.html
(`DeviceIndex`); `ClientToken`: RunInstances request parameters ("Constraints: Maximum 64 ASCII characters").

`enforce_autoscaling(autoscaling)` does the same for UpdateAutoScalingGroup: the API reference
https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_InstancesDistribution.html
(`OnDemandPercentageAboveBaseCapacity`: valid range 0-100; `OnDemandBaseCapacity`: at least 0) and
https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_LaunchTemplateSpecification.html ("You must
specify either a LaunchTemplateId or a LaunchTemplateName", one of them: AWS answers ValidationError).
moto is stricter than AWS on one point the other way round: it needs `MixedInstancesPolicy.LaunchTemplate`
in every update (and replaces the whole policy), while AWS requires it only when a policy is created
(API_MixedInstancesPolicy) and changes only what an update names. After the checks, the handler therefore
fills in the group's current launch template for moto, the way AWS keeps it; `sent` records each
request as the code built it, before that.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import boto3
from botocore.exceptions import ClientError

EVENT = "before-parameter-build.ec2.RunInstances"

# RunInstances `SubnetId` / `SecurityGroupIds` / `SecurityGroups`: "If you specify a network interface,
# you must specify any subnets [security groups] as part of the network interface instead of using this
# parameter." AWS answers InvalidParameterCombination, also when the network interfaces come from the
# launch template (EC2 User Guide, "Launch an instance from a launch template": parameters given in the
# request override the template's, and the merged request must be valid).
INSTANCE_LEVEL_NETWORK = ("SubnetId", "SecurityGroupIds", "SecurityGroups")


def _reject(code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "RunInstances")


def violations(params: Mapping[str, Any], template_interfaces: Sequence[Mapping[str, Any]]) -> list[str]:
    """The rules a RunInstances request breaks, given the network interfaces of its launch template."""
    found: list[str] = []
    request_interfaces = params.get("NetworkInterfaces") or []
    interfaces = request_interfaces or template_interfaces
    if interfaces:
        for name in INSTANCE_LEVEL_NETWORK:
            if params.get(name):
                origin = "the request" if request_interfaces else "the launch template"
                found.append(
                    f"InvalidParameterCombination: {name} with network interfaces from {origin}"
                    " (RunInstances: specify it as part of the network interface instead)"
                )
    token = params.get("ClientToken")
    if token is not None and (len(token) > 64 or not token.isascii()):
        found.append("InvalidParameterValue: ClientToken longer than 64 ASCII characters")
    for index, interface in enumerate(request_interfaces):
        # InstanceNetworkInterfaceSpecification.DeviceIndex: "If you specify a network interface when
        # launching an instance, you must specify the device index."
        if "DeviceIndex" not in interface:
            found.append(f"InvalidParameterValue: NetworkInterfaces[{index}] without DeviceIndex")
    return found


_LOOKUP: dict[tuple[str, str], Any] = {}


def _lookup_client(ec2: Any) -> Any:
    # Its own client: the template look-up must not show up among the calls of the code under test.
    key = (ec2.meta.region_name, ec2.meta.endpoint_url)
    if key not in _LOOKUP:
        _LOOKUP[key] = boto3.client("ec2", region_name=key[0], endpoint_url=key[1])
    return _LOOKUP[key]


def enforce(ec2: Any, lookup_endpoint: str | None = None) -> Callable[[], None]:
    """Check every RunInstances request of `ec2` against the rules; returns the function that stops it.
    `lookup_endpoint`: where to read launch templates (the fake itself when `ec2` goes through a proxy)."""
    lookup = (
        _lookup_client(ec2)
        if lookup_endpoint is None
        else boto3.client("ec2", region_name=ec2.meta.region_name, endpoint_url=lookup_endpoint)
    )

    def template_interfaces(params: Mapping[str, Any]) -> list[dict[str, Any]]:
        spec = params.get("LaunchTemplate")
        if not spec:
            return []
        ref = {k: spec[k] for k in ("LaunchTemplateId", "LaunchTemplateName") if k in spec}
        versions = lookup.describe_launch_template_versions(**ref, Versions=[spec.get("Version", "$Default")])
        data = versions["LaunchTemplateVersions"][0]["LaunchTemplateData"]
        return list(data.get("NetworkInterfaces", []))

    def check(params: dict[str, Any], **kwargs: Any) -> None:
        found = violations(params, template_interfaces(params))
        if found:
            code = found[0].partition(": ")[0]
            raise _reject(code, "; ".join(found))

    ec2.meta.events.register(EVENT, check)
    return lambda: ec2.meta.events.unregister(EVENT, check)


ASG_EVENT = "before-parameter-build.autoscaling.UpdateAutoScalingGroup"


def group_update_violations(params: Mapping[str, Any]) -> list[str]:
    """The rules an UpdateAutoScalingGroup request breaks (API_InstancesDistribution,
    API_LaunchTemplateSpecification)."""
    found: list[str] = []
    policy = params.get("MixedInstancesPolicy")
    if not policy:
        return found
    distribution = policy.get("InstancesDistribution", {})
    percentage = distribution.get("OnDemandPercentageAboveBaseCapacity")
    if percentage is not None and not 0 <= percentage <= 100:
        found.append("ValidationError: OnDemandPercentageAboveBaseCapacity must be within 0-100")
    base = distribution.get("OnDemandBaseCapacity")
    if base is not None and base < 0:
        found.append("ValidationError: OnDemandBaseCapacity must be at least 0")
    template = policy.get("LaunchTemplate", {})
    specs = (
        [template.get("LaunchTemplateSpecification")] if template.get("LaunchTemplateSpecification") else []
    )
    specs += [
        o["LaunchTemplateSpecification"]
        for o in template.get("Overrides", [])
        if "LaunchTemplateSpecification" in o
    ]
    for spec in specs:
        if ("LaunchTemplateId" in spec) == ("LaunchTemplateName" in spec):
            found.append(
                "ValidationError: a LaunchTemplateSpecification names either LaunchTemplateId or LaunchTemplateName"
            )
    return found


def enforce_autoscaling(autoscaling: Any, sent: list[dict[str, Any]] | None = None) -> Callable[[], None]:
    """Check every UpdateAutoScalingGroup request of `autoscaling` (appending a copy of each to `sent`);
    returns the function that stops it."""
    lookup = boto3.client(
        "autoscaling", region_name=autoscaling.meta.region_name, endpoint_url=autoscaling.meta.endpoint_url
    )

    def check(params: dict[str, Any], **kwargs: Any) -> None:
        if sent is not None:
            sent.append(copy.deepcopy(params))
        found = group_update_violations(params)
        if found:
            raise ClientError(
                {"Error": {"Code": "ValidationError", "Message": "; ".join(found)}}, "UpdateAutoScalingGroup"
            )
        policy = params.get("MixedInstancesPolicy")
        if policy and "LaunchTemplate" not in policy:
            groups = lookup.describe_auto_scaling_groups(
                AutoScalingGroupNames=[params["AutoScalingGroupName"]]
            )
            current = groups["AutoScalingGroups"][0].get("MixedInstancesPolicy", {}).get("LaunchTemplate")
            if current:
                spec = {
                    k: v
                    for k, v in current["LaunchTemplateSpecification"].items()
                    if k in ("LaunchTemplateId", "Version")
                }
                policy["LaunchTemplate"] = {**current, "LaunchTemplateSpecification": spec}

    autoscaling.meta.events.register(ASG_EVENT, check)
    return lambda: autoscaling.meta.events.unregister(ASG_EVENT, check)
