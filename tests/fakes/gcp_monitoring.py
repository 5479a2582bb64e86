"""A local gRPC fake of Cloud Monitoring's MetricService.ListTimeSeries, driven by the real client.

Holds raw GPU utilization points per (instance id, gpu_number) and answers like the API: the filter picks
the metric type and instances (`resource.labels.instance_id = one_of(...)` or `= "..."`), ALIGN_MAX
aligns each series to periods ending at the interval's end time (points stamped with their period's end,
newest first), and `page_size` counts series per page.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from concurrent import futures
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import grpc
from google.cloud import monitoring_v3

GPU_UTILIZATION = "agent.googleapis.com/gpu/utilization"


@dataclass
class MonitoringFake:
    points: dict[tuple[str, str], list[tuple[datetime, float]]] = field(default_factory=dict)
    requests: list[monitoring_v3.ListTimeSeriesRequest] = field(default_factory=list)
    fail_with: grpc.StatusCode | None = None
    endpoint: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def seed(self, instance_id: str, per_gpu: Sequence[Sequence[float]], end: datetime) -> None:
        """One value per minute per GPU, the last one just before `end` (the ops agent writes every 60 s)."""
        for gpu, values in enumerate(per_gpu):
            n = len(values)
            self.points[(instance_id, str(gpu))] = [
                (end - timedelta(seconds=60 * (n - i) - 30), float(v)) for i, v in enumerate(values)
            ]

    def list_time_series(self, request: Any, context: grpc.ServicerContext) -> Any:
        req = (
            monitoring_v3.ListTimeSeriesRequest.deserialize(request)
            if isinstance(request, bytes)
            else request
        )
        with self._lock:
            self.requests.append(req)
        if self.fail_with is not None:
            context.abort(self.fail_with, "fake failure")
        metric = re.search(r'metric\.type\s*=\s*"([^"]+)"', req.filter)
        one_of = re.search(r"resource\.labels\.instance_id\s*=\s*one_of\(([^)]*)\)", req.filter)
        single = re.search(r'resource\.labels\.instance_id\s*=\s*"([^"]+)"', req.filter)
        if metric is None or (one_of is None and single is None):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"fake cannot parse filter {req.filter!r}")
        ids = re.findall(r'"([^"]+)"', one_of.group(1)) if one_of else [single.group(1)]  # type: ignore[union-attr]
        start, end = req.interval.start_time, req.interval.end_time
        period = timedelta(seconds=req.aggregation.alignment_period.total_seconds())
        series = []
        if metric.group(1) == GPU_UTILIZATION:  # type: ignore[union-attr]
            for (iid, gpu), raw in sorted(self.points.items()):
                if iid not in ids:
                    continue
                buckets: dict[datetime, float] = {}
                for ts, value in raw:
                    if not start < ts <= end:
                        continue
                    bucket_end = end - ((end - ts) // period) * period  # periods are (end - p, end]
                    buckets[bucket_end] = max(buckets.get(bucket_end, value), value)
                if not buckets:
                    continue
                series.append(
                    monitoring_v3.TimeSeries(
                        metric={
                            "type": GPU_UTILIZATION,
                            "labels": {"gpu_number": gpu, "uuid": f"GPU-{iid}-{gpu}", "model": "NVIDIA L4"},
                        },
                        resource={
                            "type": "gce_instance",
                            "labels": {"instance_id": iid, "zone": "us-central1-a", "project_id": "p"},
                        },
                        metric_kind="GAUGE",
                        value_type="DOUBLE",
                        points=[
                            {"interval": {"end_time": t}, "value": {"double_value": v}}
                            for t, v in sorted(buckets.items(), reverse=True)
                        ],
                    )
                )
        offset = int(req.page_token or 0)
        size = req.page_size or 100_000
        page = series[offset : offset + size]
        token = str(offset + size) if offset + size < len(series) else ""
        return monitoring_v3.ListTimeSeriesResponse(time_series=page, next_page_token=token)

    def serve(self) -> grpc.Server:
        handler = grpc.method_handlers_generic_handler(
            "google.monitoring.v3.MetricService",
            {
                "ListTimeSeries": grpc.unary_unary_rpc_method_handler(
                    self.list_time_series,
                    request_deserializer=monitoring_v3.ListTimeSeriesRequest.deserialize,
                    response_serializer=monitoring_v3.ListTimeSeriesResponse.serialize,
                )
            },
        )
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self.endpoint = f"127.0.0.1:{port}"
        return server
