"""The agent's GCE preemption source against a local metadata-server fake (wait_for_change semantics)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from fakes.metadata_fake import MetadataFake

from pyctl.agent.gce import GceMetadata, MetadataError
from pyctl.agent.imds import ImdsError
from pyctl.core.checkpoint import AgentAction, NoticeKind, agent_action

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_no_preemption_reads_false_then_long_polls_with_the_etag(metadata: MetadataFake) -> None:
    source = GceMetadata(wait_seconds=1)
    assert source.interruption_notice() is None
    assert source.interruption_notice() is None  # waited up to 1 s for a change that did not come
    first, second = metadata.requests
    assert first == {}
    assert second == {"wait_for_change": "true", "last_etag": metadata.etag, "timeout_sec": "1"}
    assert source.rebalance_recommendation() is None


def test_preemption_during_a_long_poll_becomes_one_interruption_notice(metadata: MetadataFake) -> None:
    source = GceMetadata(wait_seconds=60, clock=lambda: T0)
    assert source.interruption_notice() is None
    timer = threading.Timer(0.2, metadata.preempt)
    timer.start()
    notice = source.interruption_notice()  # returns when the value changes, not after 60 s
    timer.join()
    assert notice is not None and notice.kind is NoticeKind.INTERRUPTION
    assert notice.time == T0 + timedelta(seconds=30)  # GCE powers the VM off about 30 s after the notice
    # The same notice on later ticks, without asking the server again: acted on once.
    asked = len(metadata.requests)
    assert source.interruption_notice() is notice and len(metadata.requests) == asked
    assert agent_action(notice, []) is AgentAction.FINAL_CHECKPOINT
    assert agent_action(notice, [notice]) is AgentAction.NOTHING


def test_already_preempted_at_start_is_seen_on_the_first_read(metadata: MetadataFake) -> None:
    metadata.preempt()
    assert GceMetadata().interruption_notice() is not None
    assert metadata.requests == [{}]


def test_an_unreachable_metadata_server_is_an_imds_error_the_watch_loop_logs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")  # discard port: connection refused
    with pytest.raises(MetadataError) as caught:
        GceMetadata().interruption_notice()
    assert isinstance(caught.value, ImdsError)


def test_upcoming_host_maintenance_asks_for_one_early_checkpoint(metadata: MetadataFake) -> None:
    source = GceMetadata(clock=lambda: T0)
    assert source.rebalance_recommendation() is None
    metadata.maintenance = "TERMINATE_ON_HOST_MAINTENANCE"
    notice = source.rebalance_recommendation()
    assert notice is not None and notice.kind is NoticeKind.REBALANCE
    assert source.rebalance_recommendation() == notice  # the same event: the trainer is asked once
    assert agent_action(notice, []) is AgentAction.EARLY_CHECKPOINT
    assert agent_action(notice, [notice]) is AgentAction.NOTHING
    metadata.maintenance = "NONE"
    assert source.rebalance_recommendation() is None
