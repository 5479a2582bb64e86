"""pyctl-agent: the node agent (spot/preemption watch, checkpoint sync, resume, model fetch)."""
