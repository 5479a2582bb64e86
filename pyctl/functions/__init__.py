"""Cloud function entry points, one module per function and cloud, shipped in the wheel.

Each module is a thin adapter (parse the environment and the event, call one function, return); the
packages `pyctl.package` builds hold the module, the pure core and the one cloud layer it uses:

- `gpu_watchdog_aws.handler`: the scheduled AWS Lambda of `infra/modules/aws-gpu-watchdog`.
- `spot_recovery_aws.handler`: the EventBridge Lambda of `infra/modules/aws-spot-recovery`.
- `gpu_watchdog_gcp.watchdog_http`: the Cloud Function (gen2) of `infra/modules/gcp-gpu-watchdog`.
"""
