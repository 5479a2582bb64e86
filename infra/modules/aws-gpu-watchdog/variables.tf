variable "name" {
  description = "Name of the function and prefix of every resource it owns (role, schedule, topic, queue)."
  type        = string
  nullable    = false
  default     = "gpu-watchdog"

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{0,45}$", var.name))
    error_message = "name must start with a letter and hold at most 46 letters, digits and hyphens."
  }
}

variable "env" {
  description = "The env whose instances the watchdog may act on: it lists only instances tagged pyctl:env = env, and its stop/terminate/tag/scale-in permissions require that tag (on the instance or group)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.env))
    error_message = "env must be an env name (^[a-z][a-z0-9-]{0,30}[a-z0-9]$, as in env.yaml)."
  }
}

variable "filename" {
  description = "Path of the function zip built by pyctl (`pyctl render` builds it deterministically)."
  type        = string
  nullable    = false
}

variable "source_code_hash" {
  description = "base64-encoded SHA-256 of the zip (pyctl writes it next to the path); a new hash redeploys the code."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z0-9+/]{43}=$", var.source_code_hash))
    error_message = "source_code_hash must be a base64-encoded SHA-256 (44 characters ending in '=')."
  }
}

variable "schedule_expression" {
  description = "When the watchdog runs (EventBridge Scheduler expression)."
  type        = string
  nullable    = false
  default     = "rate(15 minutes)"

  validation {
    condition     = can(regex("^(rate\\([1-9][0-9]* (minute|minutes|hour|hours)\\)|cron\\(.+\\))$", var.schedule_expression))
    error_message = "schedule_expression must be rate(N minutes|hours) or cron(...)."
  }
}

variable "regions" {
  description = "Regions whose instances the watchdog inspects; empty: the provider's region."
  type        = list(string)
  nullable    = false
  default     = []
}

variable "settings" {
  description = "What counts as idle and what the watchdog may do (see docs/watchdog.md)."
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
    terminate_one_time_spot    = optional(bool, false)
    warn_minutes               = optional(number, 0)
    metric_namespace           = optional(string, "CWAgent")
    metric_name                = optional(string, "nvidia_smi_utilization_gpu")
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
    condition     = var.settings.warn_minutes >= 0 && var.settings.warn_minutes <= 1440
    error_message = "settings.warn_minutes must be between 0 (no warning) and 1440."
  }

  validation {
    condition     = contains(["no-data", "idle"], var.settings.missing_data)
    error_message = "settings.missing_data must be \"no-data\" (never act without data) or \"idle\" (opt-in, after the grace period)."
  }
  nullable = false
}

variable "hourly_prices" {
  description = "USD per hour by instance type, for the cost lines in decisions and summaries (pyctl fills it from its catalog)."
  type        = map(number)
  nullable    = false
  default     = {}
}

variable "notify_emails" {
  description = "Email addresses subscribed to the summary topic (each must confirm the subscription)."
  type        = list(string)
  nullable    = false
  default     = []
}

variable "slack_webhook_ssm_parameter" {
  description = "Name of an SSM parameter (SecureString) holding a Slack incoming-webhook URL; null: no Slack."
  type        = string
  default     = null

  validation {
    condition     = var.slack_webhook_ssm_parameter == null || can(regex("^/[A-Za-z0-9_./-]+$", var.slack_webhook_ssm_parameter))
    error_message = "slack_webhook_ssm_parameter must be a parameter name starting with '/'."
  }
}

variable "log_retention_days" {
  description = "How long the function's logs (one JSON line per decision) are kept."
  type        = number
  nullable    = false
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ... 3653)."
  }
}

variable "kms_key_arn" {
  description = "Customer KMS key for the log group, topic, queue and environment; null: AWS-managed keys."
  type        = string
  default     = null
}

variable "timeout_seconds" {
  description = "Function timeout. Sized for 10,000 8-GPU instances in one region (module README, Sizing): about 300 API calls; a few hundred instances take seconds."
  type        = number
  nullable    = false
  default     = 600

  validation {
    condition     = var.timeout_seconds >= 10 && var.timeout_seconds <= 900
    error_message = "timeout_seconds must be between 10 and 900 (Lambda's maximum)."
  }
}

variable "memory_size" {
  description = "Function memory in MB; it also sets the CPU share (1,769 MB = one vCPU). Default sized for 10,000 8-GPU instances (module README, Sizing: 2 x (80 MB + 25 MB per 1,000 instances), at least 512)."
  type        = number
  nullable    = false
  default     = 1024

  validation {
    condition     = var.memory_size >= 128 && var.memory_size <= 10240 && floor(var.memory_size) == var.memory_size
    error_message = "memory_size must be a whole number of MB between 128 and 10240 (Lambda's range)."
  }
}

variable "tags" {
  description = "Tags for every resource of the module."
  type        = map(string)
  nullable    = false
  default     = {}
}
