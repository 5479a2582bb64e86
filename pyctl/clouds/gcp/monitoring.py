"""Cloud Monitoring I/O for the watchdog: GPU utilization series from the Ops Agent, read in batches.

The Ops Agent writes `agent.googleapis.com/gpu/utilization` on the `gce_instance` resource, one series
per GPU (metric label `gpu_number`, plus `uuid` and `model`). One ListTimeSeries request covers many
instances (`resource.labels.instance_id = one_of(...)`) with ALIGN_MAX per period: never one call per VM.

Endpoint: `PYCTL_GCP_MONITORING_ENDPOINT` (`host:port`) points the client at a local gRPC server over an
insecure channel (tests, emulators); otherwise Application Default Credentials and the real API.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pyctl.core import idle
from pyctl.core.idle import GpuReading, Window

ENDPOINT_VARIABLE = "PYCTL_GCP_MONITORING_ENDPOINT"
GPU_UTILIZATION = "agent.googleapis.com/gpu/utilization"
GPU_LABEL = "gpu_number"
# Instances per request: keeps the filter well below the API's filter length limit.
INSTANCES_PER_REQUEST = 100
PAGE_SIZE = 10_000

METRIC_PERMISSIONS = ("monitoring.timeSeries.list",)


def metric_client(endpoint: str | None = None) -> Any:
    """The one factory for the Monitoring client."""
    from google.cloud import monitoring_v3

    endpoint = endpoint or os.environ.get(ENDPOINT_VARIABLE) or None
    if not endpoint:
        return monitoring_v3.MetricServiceClient()
    import grpc
    from google.cloud.monitoring_v3.services.metric_service.transports.grpc import MetricServiceGrpcTransport

    # A test fake or emulator: plain gRPC, no credentials.
    return monitoring_v3.MetricServiceClient(
        transport=MetricServiceGrpcTransport(channel=grpc.insecure_channel(endpoint))
    )


def series_filter(instance_ids: Sequence[str], metric_type: str = GPU_UTILIZATION) -> str:
    ids = ", ".join(f'"{i}"' for i in instance_ids)
    return (
        f'metric.type = "{metric_type}" AND resource.type = "gce_instance" '
        f"AND resource.labels.instance_id = one_of({ids})"
    )


@dataclass
class MetricRequests:
    """What reading cost: instances named in each ListTimeSeries request (pages included)."""

    instances_per_request: list[int] = field(default_factory=list)


def read_gpu_series(
    client: Any, project: str, window: Window, instance_ids: Sequence[str]
) -> tuple[dict[str, list[GpuReading]], MetricRequests]:
    """numeric instance id -> one GpuReading per `gpu_number` (maximum and covered periods of the window).

    A point of an aligned series is stamped with the END of its period; the core counts a datapoint by the
    start of its period, so timestamps are shifted back one period here.
    """
    from google.cloud import monitoring_v3
    from google.protobuf.timestamp_pb2 import Timestamp

    period = timedelta(seconds=window.period_seconds)
    result: dict[str, dict[str, GpuReading]] = {i: {} for i in instance_ids}
    cost = MetricRequests()
    start, end = Timestamp(), Timestamp()
    start.FromDatetime(window.start)
    end.FromDatetime(window.end)
    for batch in idle.batches(list(instance_ids), INSTANCES_PER_REQUEST):
        request = monitoring_v3.ListTimeSeriesRequest(
            name=f"projects/{project}",
            filter=series_filter(batch),
            interval=monitoring_v3.TimeInterval(start_time=start, end_time=end),
            aggregation=monitoring_v3.Aggregation(
                alignment_period={"seconds": window.period_seconds},
                per_series_aligner=monitoring_v3.Aggregation.Aligner.ALIGN_MAX,
            ),
            view=monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL,
            page_size=PAGE_SIZE,
        )
        pager = client.list_time_series(request=request)
        for page in pager.pages:
            cost.instances_per_request.append(len(batch))
            for series in page.time_series:
                instance_id = series.resource.labels.get("instance_id", "")
                gpu = series.metric.labels.get(GPU_LABEL, "")
                if instance_id not in result or not gpu:
                    continue
                reading = result[instance_id].setdefault(gpu, GpuReading(gpu, window))
                for point in series.points:  # reduced as the page arrives: nothing kept per point
                    value = float(point.value.double_value or point.value.int64_value)
                    reading.add(point.interval.end_time - period, value)
    return {iid: list(gpus.values()) for iid, gpus in result.items()}, cost
