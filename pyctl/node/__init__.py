"""Data for the node agent bundle: the per-cloud dependency locks (see pyctl.node_bundle)."""
