# Rendered by `pyctl render --env prod`: the values are in terraform.tfvars.json, the types are the
# stacks' own (infra/stacks/*/variables.tf), and so are the validation blocks.

variable "env" {
  description = "The environment: name and whether it is protected."
  type = object({
    name      = string
    protected = bool
  })
  nullable = false
}

variable "tags" {
  description = "Tags applied to every taggable resource (Env, ManagedBy, CostCenter and the env's own)."
  type        = map(string)
  nullable    = false
}

variable "aws" {
  description = "AWS account, region and network."
  type = object({
    account_id = string
    region     = string
    vpc_id     = string
    subnet_ids = list(string)
  })
  nullable = false
}

variable "aws_pools" {
  description = "AWS GPU pools keyed by name."
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
  default  = {}
  nullable = false
}

variable "spot_recovery" {
  description = "Checkpoint-aware spot recovery settings."
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
  default  = {}
  nullable = false
}

variable "aws_agent_bundle" {
  description = "The AWS node agent bundle built by pyctl render: { path (relative to this directory), sha256 }."
  type = object({
    path   = string
    sha256 = string
  })
  nullable = false
}

variable "gcp" {
  description = "GCP project, region and network."
  type = object({
    project    = string
    region     = string
    network    = string
    subnetwork = string
  })
  nullable = false
}

variable "gcp_pools" {
  description = "GCP GPU pools keyed by name."
  type = map(object({
    capacity               = string
    machine_type           = string
    gpu                    = string
    gpus_per_instance      = number
    accelerator_type       = optional(string)
    accelerator_count      = optional(number, 0)
    local_ssd_count        = optional(number, 0)
    boot_disk_gb           = optional(number, 200)
    distribution           = optional(string, "regional")
    zones                  = list(string)
    min_size               = number
    desired_size           = number
    max_size               = number
    termination_action     = optional(string)
    reservation            = optional(object({ instance_count = number, end_date = optional(string) }))
    model                  = optional(string)
    auto_shutdown          = optional(bool, true)
    watchdog_may_terminate = optional(bool, false)
    tags                   = optional(map(string), {})
    fallback               = optional(string, "none") # spot pools: on_demand gets an on-demand twin group
  }))
  default  = {}
  nullable = false
}

variable "gcp_agent_bundle" {
  description = "The GCP node agent bundle built by pyctl render: { path (relative to this directory), sha256 }."
  type = object({
    path   = string
    sha256 = string
  })
  nullable = false
}

variable "model_cache" {
  description = "Model-cache buckets per cloud, the models to cache, and the node NVMe cache path."
  type = object({
    aws = optional(object({
      bucket                  = string
      kms_key_arn             = optional(string)
      access_log_bucket       = optional(string)
      noncurrent_version_days = optional(number, 30)
    }))
    gcp = optional(object({
      bucket                  = string
      location                = optional(string, "US")
      kms_key_name            = optional(string)
      noncurrent_version_days = optional(number, 30)
      key_prefix              = optional(string, "")
      access_log_bucket       = optional(string)
    }))
    models = optional(list(object({
      name    = string
      version = string
    })), [])
    nvme_path = optional(string, "/mnt/nvme")
  })
  nullable = false
}

variable "watchdog" {
  description = "Idle-GPU watchdog settings."
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

variable "function_packages" {
  description = "Function zips built by pyctl: name => { path (relative to this directory), base64sha256 }."
  type = map(object({
    path         = string
    base64sha256 = string
  }))
  default  = {}
  nullable = false
}
