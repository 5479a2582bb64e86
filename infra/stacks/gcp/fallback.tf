# The spot fallback on GCP: spot pools with `spot.fallback: on_demand` get an on-demand twin group
# (gcp-gpu-pool), and the watchdog function's fallback pass shifts them to the twin after
# max_interruptions preemptions within window_hours (or a capacity error) and back after cooldown_hours.
# The rule is env.yaml's `spot_recovery:`, shared with AWS; the state lives in the env's GCS bucket.

variable "spot_recovery" {
  description = "Spot recovery settings (env.yaml `spot_recovery:`); GCP uses enabled, max_interruptions, window_hours and cooldown_hours for the fallback."
  type = object({
    enabled              = optional(bool, true)
    max_interruptions    = optional(number, 3)
    window_hours         = optional(number, 6)
    cooldown_hours       = optional(number, 2)
    checkpoint_retention = optional(number, 3)
    jobs = optional(map(object({
      pool = string
    })), {})
  })
  default = {}
}

locals {
  fallback_groups = [
    for name, pool in module.pool : {
      pool       = name
      spot_group = pool.fallback.spot_group
      twin_group = pool.fallback.twin_group
      location   = pool.fallback.location
      regional   = pool.fallback.regional
      zones      = pool.fallback.zones
    } if pool.fallback != null
  ]
  fallback = var.spot_recovery.enabled && length(local.fallback_groups) > 0 && local.cache != null ? {
    groups            = local.fallback_groups
    max_interruptions = var.spot_recovery.max_interruptions
    window_hours      = var.spot_recovery.window_hours
    cooldown_hours    = var.spot_recovery.cooldown_hours
    state_bucket      = local.cache.bucket
    state_prefix      = local.cache.key_prefix
  } : null
}
