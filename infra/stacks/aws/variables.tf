# The types match what `pyctl render` writes to terraform.tfvars.json (pyctl/render.py); env.yaml is
# validated there against the GPU catalog first, these blocks catch hand-edited or stale values at plan time.

variable "env" {
  description = "The environment: its name (tags, resource names) and whether it is protected."
  type = object({
    name      = string
    protected = bool
  })

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.env.name))
    error_message = "env.name must be 2-32 lowercase letters, digits and hyphens, starting with a letter."
  }
  nullable = false
}

variable "tags" {
  description = "Tags for every taggable resource (Env, ManagedBy, CostCenter and the env's own)."
  type        = map(string)
  nullable    = false
  default     = {}
}

variable "aws" {
  description = "The env's AWS account, region, VPC and private subnets (the pools launch into the subnets of their zones)."
  type = object({
    account_id = string
    region     = string
    vpc_id     = string
    subnet_ids = list(string)
  })

  validation {
    condition     = can(regex("^[0-9]{12}$", var.aws.account_id))
    error_message = "aws.account_id must be a 12-digit AWS account id."
  }

  validation {
    condition     = length(var.aws.subnet_ids) > 0 && alltrue([for s in var.aws.subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", s))])
    error_message = "aws.subnet_ids must list at least one subnet id (subnet-...)."
  }
  nullable = false
}

variable "pools" {
  description = "GPU pools keyed by name. capacity: reserved | on_demand | spot; spot pools take `spot`, reserved pools `reservation`."
  type = map(object({
    capacity               = string
    instance_type          = string
    instance_types         = optional(list(string), [])
    gpu                    = string
    gpus_per_instance      = number
    zones                  = optional(list(string), [])
    min_size               = number
    desired_size           = number
    max_size               = number
    model                  = optional(string)
    auto_shutdown          = optional(bool, true)
    watchdog_may_terminate = optional(bool, false)
    root_volume_gb         = optional(number, 200)
    tags                   = optional(map(string), {})
    spot = optional(object({
      allocation_strategy             = optional(string, "price-capacity-optimized")
      on_demand_base                  = optional(number, 0)
      on_demand_percentage_above_base = optional(number, 0)
      max_price                       = optional(string)
      fallback                        = optional(string, "on_demand")
      capacity_rebalance              = optional(bool, true)
    }))
    reservation = optional(object({
      instance_count             = number
      match                      = optional(string, "capacity-reservations-only")
      end_date                   = optional(string)
      capacity_block_offering_id = optional(string)
    }))
    ingress = optional(object({
      cidrs              = optional(list(string), [])
      security_group_ids = optional(list(string), [])
      ports              = optional(list(number), [8000, 9400])
    }), {})
    boot_secrets = optional(list(object({
      env_var                = string
      ssm_parameter          = optional(string)
      secrets_manager_secret = optional(string)
    })), [])
  }))
  default = {}

  validation {
    condition     = alltrue([for name, p in var.pools : contains(["reserved", "on_demand", "spot"], p.capacity)])
    error_message = "Every pool's capacity must be one of: reserved, on_demand, spot."
  }

  validation {
    condition     = alltrue([for name, p in var.pools : p.min_size >= 0 && p.min_size <= p.desired_size && p.desired_size <= p.max_size])
    error_message = "Every pool needs 0 <= min_size <= desired_size <= max_size."
  }

  validation {
    condition = alltrue([for name, p in var.pools : alltrue([
      for t in concat([p.instance_type], p.instance_types) : can(regex("^(p[3-6][a-z0-9-]*|g[4-6][a-z0-9-]*|trn[12][a-z0-9-]*|inf[12][a-z0-9-]*)\\.[0-9a-z]+$", t))
    ])])
    error_message = "Pool instance types must be accelerated types (p3-p6, g4-g6, trn1-2, inf1-2 families), such as p5.48xlarge or g6.xlarge."
  }

  validation {
    condition     = alltrue([for name, p in var.pools : (p.capacity == "spot") == (p.spot != null)])
    error_message = "Spot pools need `spot` settings, and only spot pools may have them."
  }

  validation {
    condition = alltrue([for name, p in var.pools : p.spot == null || contains(
      ["price-capacity-optimized", "capacity-optimized", "capacity-optimized-prioritized", "lowest-price"],
      try(p.spot.allocation_strategy, ""),
    )])
    error_message = "spot.allocation_strategy must be one of: price-capacity-optimized, capacity-optimized, capacity-optimized-prioritized, lowest-price."
  }

  validation {
    condition     = alltrue([for name, p in var.pools : p.spot == null || contains(["on_demand", "none"], try(p.spot.fallback, ""))])
    error_message = "spot.fallback must be on_demand or none."
  }

  validation {
    condition     = alltrue([for name, p in var.pools : p.spot == null || try(p.spot.on_demand_base <= p.max_size && p.spot.on_demand_percentage_above_base >= 0 && p.spot.on_demand_percentage_above_base <= 100, false)])
    error_message = "spot.on_demand_base must not exceed max_size, and spot.on_demand_percentage_above_base must be between 0 and 100."
  }

  validation {
    condition     = alltrue([for name, p in var.pools : (p.capacity == "reserved") == (p.reservation != null)])
    error_message = "Reserved pools need `reservation` settings, and only reserved pools may have them."
  }

  validation {
    condition     = alltrue([for name, p in var.pools : p.capacity != "reserved" || length(p.zones) == 1])
    error_message = "A reserved pool lists exactly one zone: a capacity reservation lives in one availability zone."
  }

  validation {
    condition = alltrue([for name, p in var.pools : p.reservation == null || try(
      contains(["capacity-reservations-only", "capacity-reservations-first"], p.reservation.match) && p.reservation.instance_count >= 1,
      false,
    )])
    error_message = "reservation.match must be capacity-reservations-only or capacity-reservations-first, and reservation.instance_count at least 1."
  }

  validation {
    condition     = alltrue([for name, p in var.pools : p.reservation == null || try(p.reservation.match != "capacity-reservations-only" || p.max_size <= p.reservation.instance_count, false)])
    error_message = "A capacity-reservations-only pool cannot grow beyond its reservation: max_size must be <= reservation.instance_count."
  }

  validation {
    condition     = alltrue([for name, p in var.pools : !contains(p.ingress.cidrs, "0.0.0.0/0") && !contains(p.ingress.cidrs, "::/0")])
    error_message = "ingress.cidrs must not open a pool to the whole internet; name the networks that need it."
  }
  nullable = false
}

variable "model_cache" {
  description = "The model cache: the S3 bucket settings (null: no AWS cache), the models nodes fetch at boot, and the node NVMe mount path."
  type = object({
    aws = optional(object({
      bucket                  = string
      kms_key_arn             = optional(string)
      access_log_bucket       = optional(string)
      noncurrent_version_days = optional(number, 30)
    }))
    gcp = optional(any)
    models = optional(list(object({
      name    = string
      version = string
    })), [])
    nvme_path = optional(string, "/mnt/nvme")
  })

  validation {
    condition     = var.model_cache.aws == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", try(var.model_cache.aws.bucket, "")))
    error_message = "model_cache.aws.bucket must be a valid S3 bucket name."
  }
  nullable = false
}

variable "agent_bundle" {
  description = "The node agent bundle pyctl render builds: path (relative to the env directory) and sha256 (hex). The stack uploads it into the model-cache bucket under <key_prefix>agent/<sha256>.tar.gz; the nodes install pyctl-agent from there, only if the hash matches."
  type = object({
    path   = string
    sha256 = string
  })
  nullable = false
}

variable "watchdog" {
  description = "Idle-GPU watchdog settings (used by watchdog.tf)."
  type = object({
    enabled                     = optional(bool, true)
    schedule                    = optional(string, "rate(15 minutes)")
    idle_minutes                = optional(number, 30)
    threshold_percent           = optional(number, 5)
    min_uptime_minutes          = optional(number, 20)
    missing_data                = optional(string, "no-data")
    missing_data_grace_minutes  = optional(number, 60)
    dry_run                     = optional(bool, false)
    max_actions_per_run         = optional(number, 10)
    act_in_protected_env        = optional(bool, false)
    warn_minutes                = optional(number, 0)
    metric_namespace            = optional(string, "CWAgent")
    metric_name                 = optional(string, "nvidia_smi_utilization_gpu")
    notify_emails               = optional(list(string), [])
    slack_webhook_ssm_parameter = optional(string)
    log_retention_days          = optional(number, 30)
    hourly_prices               = optional(map(number), {})
  })
  default  = {}
  nullable = false
}

variable "spot_recovery" {
  description = "Checkpoint-aware spot recovery settings (used by recovery.tf)."
  type = object({
    enabled              = optional(bool, true)
    max_interruptions    = optional(number, 3)
    window_hours         = optional(number, 6)
    cooldown_hours       = optional(number, 2)
    checkpoint_retention = optional(number, 3)
    # Standalone jobs (outside an Auto Scaling group), keyed by job name: relaunched from their pool's
    # launch template, in its subnets, by the recovery function.
    jobs = optional(map(object({
      pool = string
    })), {})
  })
  default = {}

  validation {
    condition     = alltrue([for name, job in var.spot_recovery.jobs : contains(keys(var.pools), job.pool)])
    error_message = "Every spot_recovery job must name one of this env's AWS pools."
  }
  nullable = false
}

variable "function_packages" {
  description = "Function zips built by pyctl (watchdog, spot recovery): name => { path relative to the env directory, base64sha256 }."
  type = map(object({
    path         = string
    base64sha256 = string
  }))
  default  = {}
  nullable = false
}
