variable "name" {
  description = "Name of the table, function, rules and queue (pyctl uses pyctl-<env>-spot-recovery; `pyctl jobs status` reads that table)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9-]{1,45}$", var.name))
    error_message = "name must be 2-46 letters, digits and hyphens (it prefixes the Lambda, rule and queue names)."
  }
}

variable "lambda_filename" {
  description = "Path of the function zip built by pyctl (`pyctl.package`, function spot_recovery)."
  type        = string
  nullable    = false
}

variable "lambda_source_code_hash" {
  description = "base64-encoded sha256 of the zip (pyctl writes it next to the path; filebase64sha256() gives the same)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z0-9+/]{43}=$", var.lambda_source_code_hash))
    error_message = "lambda_source_code_hash must be a base64-encoded sha256 (44 characters ending in '=')."
  }
}

variable "policy" {
  description = "On-demand fallback: after max_interruptions within window_hours (or no spot capacity), replacements are on-demand for cooldown_hours."
  type = object({
    max_interruptions = optional(number, 3)
    window_hours      = optional(number, 6)
    cooldown_hours    = optional(number, 2)
  })
  default = {}

  validation {
    condition     = var.policy.max_interruptions >= 1 && var.policy.window_hours > 0 && var.policy.cooldown_hours >= 0
    error_message = "policy: max_interruptions must be >= 1, window_hours > 0 and cooldown_hours >= 0."
  }
  nullable = false
}

variable "jobs" {
  description = "Standalone job instances to replace, keyed by job name (the instances' pyctl:job tag): the launch template, the instance types and subnets a replacement may use, and the security groups of the template's network interface (a replacement names its subnet on that interface, so it names the groups there too). Instances of Auto Scaling groups are only recorded."
  type = map(object({
    launch_template_id = string
    instance_types     = optional(list(string), [])
    subnet_ids         = list(string)
    security_group_ids = optional(list(string), [])
  }))
  default = {}

  validation {
    condition     = alltrue([for name, job in var.jobs : can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", name))])
    error_message = "Job names must be 1-128 of [A-Za-z0-9._-], starting with a letter or digit (they are S3 key segments)."
  }

  validation {
    condition     = alltrue([for name, job in var.jobs : can(regex("^lt-[0-9a-f]{8,17}$", job.launch_template_id)) && length(job.subnet_ids) > 0])
    error_message = "Every job needs a launch_template_id (lt-...) and at least one subnet id."
  }
  nullable = false
}

variable "instance_role_arns" {
  description = "IAM roles of the job launch templates' instance profiles: the only roles the function may pass to EC2."
  type        = list(string)
  nullable    = false
  default     = []

  validation {
    condition     = alltrue([for arn in var.instance_role_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/", arn))])
    error_message = "instance_role_arns must be IAM role ARNs."
  }
}

variable "checkpoint_bucket" {
  description = "Bucket holding the checkpoints (the model-cache bucket); the function reads manifests to record the last complete step. null: not recorded."
  type        = string
  default     = null
}

variable "checkpoint_prefix" {
  description = "Key prefix in front of checkpoints/ (the same value nodes pass to pyctl-agent as --prefix)."
  type        = string
  nullable    = false
  default     = ""
}

variable "checkpoint_kms_key_arn" {
  description = "Customer KMS key encrypting the checkpoint bucket (null: SSE-S3 or the AWS-managed key)."
  type        = string
  default     = null
}

variable "kms_key_arn" {
  description = "Customer KMS key for the table, queue and log group (null: AWS-owned/managed keys)."
  type        = string
  default     = null
}

variable "log_retention_days" {
  description = "Days to keep the function's logs."
  type        = number
  nullable    = false
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ...)."
  }
}

variable "deletion_protection" {
  description = "Protect the interruption table from deletion."
  type        = bool
  nullable    = false
  default     = true
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  nullable    = false
  default     = {}
}

variable "env" {
  description = "The env's name: the only Auto Scaling groups the on-demand fallback may change carry tag pyctl:env = env (code and IAM condition). Required when groups are set."
  type        = string
  default     = ""
  nullable    = false
}

variable "groups" {
  description = "Spot pools' Auto Scaling groups with `spot.fallback: on_demand`, keyed by pool name (known at plan time): the group's name, ARN and the OnDemandPercentageAboveBaseCapacity they go back to after the cool-down. The fallback sets that number to 100 (on-demand only) after policy.max_interruptions within policy.window_hours or when a launch fails for lack of spot capacity."
  type = map(object({
    name                            = string
    arn                             = string
    on_demand_percentage_above_base = optional(number, 0)
  }))
  default  = {}
  nullable = false

  validation {
    condition     = alltrue([for name, g in var.groups : g.on_demand_percentage_above_base >= 0 && g.on_demand_percentage_above_base <= 100 && floor(g.on_demand_percentage_above_base) == g.on_demand_percentage_above_base])
    error_message = "groups: on_demand_percentage_above_base must be an integer from 0 to 100 (InstancesDistribution.OnDemandPercentageAboveBaseCapacity)."
  }

  validation {
    condition     = alltrue([for name, g in var.groups : can(regex("^arn:aws[a-z-]*:autoscaling:[a-z0-9-]+:[0-9]{12}:autoScalingGroup:", g.arn))])
    error_message = "groups: arn must be an Auto Scaling group ARN."
  }
}

variable "fallback_schedule" {
  description = "EventBridge schedule of the pass that puts groups back to spot once their cool-down is over (only created when groups are set)."
  type        = string
  default     = "rate(15 minutes)"
  nullable    = false
}
