variable "project" {
  description = "Project whose GPU VMs the watchdog inspects; the function, its schedule and its identities live here too."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project))
    error_message = "project must be a GCP project id: 6-30 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "region" {
  description = "Region of the function and the Cloud Scheduler job (the watchdog itself covers every zone unless `zones` is set)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a GCP region such as us-central1."
  }
}

variable "name" {
  description = "Name of the function and prefix of every resource it owns (service accounts, roles, schedule, log bucket)."
  type        = string
  nullable    = false
  default     = "gpu-watchdog"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,38}[a-z0-9]$", var.name))
    error_message = "name must be 2-40 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "env" {
  description = "The env whose VMs the watchdog may act on: it lists only VMs labelled pyctl-env = env (list filter), and the deployed function refuses to start without it."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.env))
    error_message = "env must be an env name (^[a-z][a-z0-9-]{0,30}[a-z0-9]$, as in env.yaml)."
  }
}

variable "filename" {
  description = "Path of the function source zip built by pyctl (`pyctl render` builds it deterministically: a main.py re-exporting pyctl.functions.gpu_watchdog_gcp, requirements.txt, pyctl/core, pyctl/clouds/gcp)."
  type        = string
  nullable    = false
}

variable "source_code_hash" {
  description = "base64-encoded SHA-256 of the zip (pyctl writes it next to the path). It names the uploaded object, so a new zip redeploys the function."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z0-9+/]{43}=$", var.source_code_hash))
    error_message = "source_code_hash must be a base64-encoded SHA-256 (44 characters ending in '=')."
  }
}

variable "source_bucket" {
  description = "Existing bucket the source zip is uploaded to (Cloud Functions builds from it), e.g. the env's model-cache bucket."
  type        = string
  nullable    = false
}

variable "source_prefix" {
  description = "Object name prefix of the source zip inside source_bucket."
  type        = string
  nullable    = false
  default     = "functions/"
}

variable "schedule" {
  description = "When the watchdog runs: a unix-cron expression (Cloud Scheduler), in time_zone."
  type        = string
  nullable    = false
  default     = "*/15 * * * *"

  validation {
    condition     = length(split(" ", trimspace(var.schedule))) == 5
    error_message = "schedule must be a unix-cron expression with 5 fields, e.g. \"*/15 * * * *\"."
  }
}

variable "time_zone" {
  description = "Time zone of the schedule (tz database name)."
  type        = string
  nullable    = false
  default     = "Etc/UTC"
}

variable "zones" {
  description = "Zones whose VMs the watchdog inspects; empty: every zone of the project (one aggregated list)."
  type        = list(string)
  nullable    = false
  default     = []
}

variable "settings" {
  description = "What counts as idle and what the watchdog may do (the same settings as on AWS, see docs/gcp-watchdog.md)."
  type = object({
    idle_minutes               = optional(number, 30)
    threshold_percent          = optional(number, 5)
    min_uptime_minutes         = optional(number, 20)
    missing_data               = optional(string, "no-data")
    missing_data_grace_minutes = optional(number, 60)
    max_actions_per_run        = optional(number, 10)
    dry_run                    = optional(bool, false)
    protected_env              = optional(bool, false)
    act_in_protected_env       = optional(bool, false)
  })
  default = {}

  validation {
    condition     = var.settings.idle_minutes >= 5 && var.settings.idle_minutes <= 1440
    error_message = "settings.idle_minutes must be between 5 and 1440."
  }

  validation {
    condition     = var.settings.threshold_percent > 0 && var.settings.threshold_percent <= 100
    error_message = "settings.threshold_percent must be in (0, 100]."
  }

  validation {
    condition     = var.settings.min_uptime_minutes >= 0 && var.settings.min_uptime_minutes <= 1440
    error_message = "settings.min_uptime_minutes must be between 0 and 1440."
  }

  validation {
    condition     = var.settings.missing_data_grace_minutes >= 0 && var.settings.max_actions_per_run >= 0
    error_message = "settings.missing_data_grace_minutes and max_actions_per_run must not be negative."
  }

  validation {
    condition     = contains(["no-data", "idle"], var.settings.missing_data)
    error_message = "settings.missing_data must be \"no-data\" (never act without data) or \"idle\" (opt-in, after the grace period)."
  }
  nullable = false
}

variable "recover_spot" {
  description = "Also run the Spot recovery pass: start standalone pyctl Spot VMs (termination action STOP) that were preempted, once capacity is back."
  type        = bool
  nullable    = false
  default     = true
}

variable "act_on_name_prefix" {
  description = "The watchdog may stop/start/delete only VMs and instance groups whose names start with this (IAM condition); null: any labelled VM in the project."
  type        = string
  nullable    = false
  default     = "pyctl-"

  validation {
    condition     = var.act_on_name_prefix == null || can(regex("^[a-z][a-z0-9-]*$", var.act_on_name_prefix))
    error_message = "act_on_name_prefix must be null or the start of a GCE resource name (lowercase letters, digits, hyphens)."
  }
}

variable "hourly_prices" {
  description = "USD per hour by machine type, for the cost lines in decisions and summaries (pyctl fills it from its catalog)."
  type        = map(number)
  nullable    = false
  default     = {}
}

variable "log_retention_days" {
  description = "Days the function's logs (one JSON line per decision) are kept in a dedicated log bucket; null: only the project's _Default bucket."
  type        = number
  nullable    = false
  default     = 30

  validation {
    condition     = var.log_retention_days == null || try(var.log_retention_days >= 1 && var.log_retention_days <= 3650, false)
    error_message = "log_retention_days must be null or between 1 and 3650."
  }
}

variable "labels" {
  description = "Labels applied to the function (GCP label rules: lowercase keys and values)."
  type        = map(string)
  nullable    = false
  default     = {}
}

variable "memory" {
  description = "Memory of the function (Cloud Functions gen2 `available_memory`, e.g. \"1Gi\"); the CPU share follows it. Default sized for 10,000 8-GPU VMs (docs/gcp-watchdog.md, Sizing)."
  type        = string
  nullable    = false
  default     = "1Gi"

  validation {
    condition     = can(regex("^[1-9][0-9]*(Mi|Gi)$", var.memory))
    error_message = "memory must be a size such as \"512Mi\" or \"2Gi\"."
  }
}

variable "timeout_seconds" {
  description = "Function timeout (an HTTP gen2 function allows up to 3600 s). The run waits at most 240 s for its operations and 180 s for the recovery pass's, after listing and reading."
  type        = number
  nullable    = false
  default     = 540

  validation {
    condition     = var.timeout_seconds >= 60 && var.timeout_seconds <= 3600
    error_message = "timeout_seconds must be between 60 and 3600."
  }
}

variable "fallback" {
  description = "Spot fallback (pyctl.clouds.gcp.recovery): the spot groups with an on-demand twin (each: pool, spot and twin group names, location, regional), the rule (max_interruptions preemptions within window_hours, then on-demand for cooldown_hours), and where the state lives (a JSON object per pool under state_prefix in state_bucket, written with generation preconditions). null: no fallback pass."
  type = object({
    groups = list(object({
      pool       = string
      spot_group = string
      twin_group = string
      location   = string
      regional   = bool
      zones      = optional(list(string), [])
    }))
    max_interruptions = optional(number, 3)
    window_hours      = optional(number, 6)
    cooldown_hours    = optional(number, 2)
    state_bucket      = string
    state_prefix      = optional(string, "")
  })
  default = null

  validation {
    condition     = var.fallback == null || try(var.fallback.max_interruptions >= 1 && var.fallback.window_hours > 0 && var.fallback.cooldown_hours > 0, false)
    error_message = "fallback.max_interruptions must be at least 1, window_hours and cooldown_hours above 0."
  }
}
