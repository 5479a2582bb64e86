"""The `pyctl` commands, one module per area, loaded lazily by `pyctl.cli` (its COMMANDS registry).

Each command parses its options, calls one function and prints. Option help shared by the modules:
"""

ENV_HELP = "Env name under infra/envs/, or a directory holding env.yaml."
JSON_HELP = "Print JSON instead of text."
