# The idle-GPU watchdog of this env on GCP (infra/modules/gcp-gpu-watchdog), driven by env.yaml's
# `watchdog:` like the AWS one. `pyctl render` builds the function zip and writes
# var.function_packages["gcp_watchdog"] ({path relative to the env directory, base64sha256}); the zip is
# uploaded to the env's model-cache bucket under functions/.
#
# Declared here rather than in variables.tf (owned by the GCP stack): the two inputs only this file uses.
# The env passes them like the AWS stack's: `watchdog = var.watchdog`, `function_packages = var.function_packages`.

variable "watchdog" {
  description = "Idle-GPU watchdog settings (env.yaml `watchdog:`; the AWS-only metric and notification fields are ignored here)."
  type = object({
    enabled                    = optional(bool, true)
    schedule                   = optional(string, "rate(15 minutes)")
    idle_minutes               = optional(number, 30)
    threshold_percent          = optional(number, 5)
    min_uptime_minutes         = optional(number, 20)
    missing_data               = optional(string, "no-data")
    missing_data_grace_minutes = optional(number, 60)
    dry_run                    = optional(bool, false)
    max_actions_per_run        = optional(number, 10)
    act_in_protected_env       = optional(bool, false)
    log_retention_days         = optional(number, 30)
    hourly_prices              = optional(map(number), {})
  })
  default = {}
}

variable "function_packages" {
  description = "Function zips built by pyctl: name => { path relative to the env directory, base64sha256 }. This stack uses gcp_watchdog."
  type = map(object({
    path         = string
    base64sha256 = string
  }))
  default = {}
}

locals {
  # Deployed when the env has GCP pools, a GCS bucket for the source, and pyctl has built the zip.
  watchdog_enabled = var.watchdog.enabled && length(var.pools) > 0 && local.cache != null && contains(keys(var.function_packages), "gcp_watchdog")

  # env.yaml's schedule is in EventBridge form (shared with AWS); Cloud Scheduler takes unix-cron.
  # rate(N minutes) -> */N * * * *; rate(N hours) -> 0 */N * * *; cron(m h dom mon dow year) -> the first five
  # fields with '?' as '*' (named weekdays such as MON-FRI mean the same in both).
  watchdog_schedule = try(
    format("*/%s * * * *", regex("^rate\\(([0-9]+) minutes?\\)$", var.watchdog.schedule)[0]),
    format("0 */%s * * *", regex("^rate\\(([0-9]+) hours?\\)$", var.watchdog.schedule)[0]),
    join(" ", slice(split(" ", replace(regex("^cron\\((.+)\\)$", var.watchdog.schedule)[0], "?", "*")), 0, 5)),
    var.watchdog.schedule,
  )
}

module "gpu_watchdog" {
  source = "../../modules/gcp-gpu-watchdog"
  count  = local.watchdog_enabled ? 1 : 0

  project          = var.gcp.project
  region           = var.gcp.region
  name             = "${var.env.name}-gpu-watchdog"
  env              = var.env.name # only this env's VMs (label pyctl-env in the list filter)
  filename         = "${path.root}/${var.function_packages["gcp_watchdog"].path}"
  source_code_hash = var.function_packages["gcp_watchdog"].base64sha256
  source_bucket    = module.model_cache[0].bucket

  schedule = local.watchdog_schedule
  settings = {
    idle_minutes               = var.watchdog.idle_minutes
    threshold_percent          = var.watchdog.threshold_percent
    min_uptime_minutes         = var.watchdog.min_uptime_minutes
    missing_data               = var.watchdog.missing_data
    missing_data_grace_minutes = var.watchdog.missing_data_grace_minutes
    max_actions_per_run        = var.watchdog.max_actions_per_run
    dry_run                    = var.watchdog.dry_run
    protected_env              = var.env.protected
    act_in_protected_env       = var.watchdog.act_in_protected_env
  }
  # Pool VMs and groups are named pyctl-<env>-<pool>...: the act role is limited to this env's.
  act_on_name_prefix = "pyctl-${var.env.name}-"
  recover_spot       = true
  fallback           = local.fallback # fallback.tf: twins of spot pools with spot.fallback on_demand
  # $/hour by machine type (and TYPE:spot), rendered by pyctl from the price catalog and env.yaml's pricing.
  hourly_prices      = var.watchdog.hourly_prices
  log_retention_days = var.watchdog.log_retention_days
  labels             = merge(local.labels, { "pyctl-env" = var.env.name })

  depends_on = [google_project_service.this] # services.tf
}

output "gpu_watchdog" {
  description = "The GCP watchdog function, its scheduler job and its log bucket (null when not deployed)."
  value = local.watchdog_enabled ? {
    function_name = module.gpu_watchdog[0].function_name
    scheduler_job = module.gpu_watchdog[0].scheduler_job
    log_bucket    = module.gpu_watchdog[0].log_bucket
  } : null
}
