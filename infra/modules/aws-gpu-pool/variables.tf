variable "name" {
  description = "Pool name, unique in the env (tag Pool / pyctl:pool; resource names are <env>-<name>)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.name))
    error_message = "name must be 2-32 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "env" {
  description = "Environment name (tag Env / pyctl:env)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.env))
    error_message = "env must be 2-32 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "capacity" {
  description = "How the pool buys capacity: reserved (a targeted capacity reservation or capacity block), on_demand, or spot."
  type        = string
  nullable    = false

  validation {
    condition     = contains(["reserved", "on_demand", "spot"], var.capacity)
    error_message = "capacity must be one of: reserved, on_demand, spot."
  }
}

variable "instance_type" {
  description = "The GPU instance type (primary type of a spot pool)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^(p[3-6][a-z0-9-]*|g[4-6][a-z0-9-]*|trn[12][a-z0-9-]*|inf[12][a-z0-9-]*)\\.[0-9a-z]+$", var.instance_type))
    error_message = "instance_type must be an accelerated instance type (p3-p6, g4-g6, trn1-2, inf1-2 families), such as p5.48xlarge or g6.xlarge."
  }
}

variable "instance_types" {
  description = "Spot pools: instance types of equal capability (same GPU model and count) for the mixed-instances policy, primary first. Empty: instance_type alone."
  type        = list(string)
  nullable    = false
  default     = []

  validation {
    condition     = alltrue([for t in var.instance_types : can(regex("^(p[3-6][a-z0-9-]*|g[4-6][a-z0-9-]*|trn[12][a-z0-9-]*|inf[12][a-z0-9-]*)\\.[0-9a-z]+$", t))])
    error_message = "instance_types must all be accelerated instance types (p3-p6, g4-g6, trn1-2, inf1-2 families)."
  }
}

variable "gpu" {
  description = "GPU model carried by the instance type (catalog name, such as h100); reported in gpu_capacity."
  type        = string
  nullable    = false
}

variable "gpus_per_instance" {
  description = "GPUs per instance; reported in gpu_capacity."
  type        = number
  nullable    = false

  validation {
    condition     = var.gpus_per_instance >= 1 && floor(var.gpus_per_instance) == var.gpus_per_instance
    error_message = "gpus_per_instance must be a whole number, at least 1."
  }
}

variable "vpc_id" {
  description = "VPC of the pool's security group."
  type        = string
  nullable    = false
}

variable "subnet_ids" {
  description = "Private subnets the group launches into (one per availability zone of the pool). Reserved pools: subnets in the reservation's zone."
  type        = list(string)
  nullable    = false

  validation {
    condition     = length(var.subnet_ids) > 0
    error_message = "subnet_ids must name at least one subnet."
  }
}

variable "availability_zone" {
  description = "Reserved pools: the availability zone of the capacity reservation (a reservation lives in one zone)."
  type        = string
  default     = null
}

variable "min_size" {
  description = "Minimum number of instances."
  type        = number
  nullable    = false

  validation {
    condition     = var.min_size >= 0 && floor(var.min_size) == var.min_size
    error_message = "min_size must be a whole number, at least 0."
  }
}

variable "max_size" {
  description = "Maximum number of instances."
  type        = number
  nullable    = false
}

variable "desired_size" {
  description = "Desired number of instances."
  type        = number
  nullable    = false
}

variable "spot" {
  description = "Spot pools: the mixed-instances distribution. on_demand_base instances are always on demand (a fallback floor); fallback is read by spot recovery (on_demand: switch to on demand after repeated interruptions)."
  type = object({
    allocation_strategy             = optional(string, "price-capacity-optimized")
    on_demand_base                  = optional(number, 0)
    on_demand_percentage_above_base = optional(number, 0)
    max_price                       = optional(string)
    fallback                        = optional(string, "on_demand")
    capacity_rebalance              = optional(bool, true)
  })
  default = null

  validation {
    condition     = var.spot == null || contains(["price-capacity-optimized", "capacity-optimized", "capacity-optimized-prioritized", "lowest-price"], try(var.spot.allocation_strategy, ""))
    error_message = "spot.allocation_strategy must be one of: price-capacity-optimized, capacity-optimized, capacity-optimized-prioritized, lowest-price."
  }

  validation {
    condition     = var.spot == null || contains(["on_demand", "none"], try(var.spot.fallback, ""))
    error_message = "spot.fallback must be on_demand or none."
  }

  validation {
    condition     = var.spot == null || (try(var.spot.on_demand_base, -1) >= 0 && try(var.spot.on_demand_percentage_above_base, -1) >= 0 && try(var.spot.on_demand_percentage_above_base, 101) <= 100)
    error_message = "spot.on_demand_base must be >= 0 and spot.on_demand_percentage_above_base between 0 and 100."
  }
}

variable "reservation" {
  description = "Reserved pools: the targeted capacity reservation. match: capacity-reservations-only (never launch outside it) or capacity-reservations-first. end_date: RFC 3339 time it expires; null: until cancelled."
  type = object({
    instance_count = number
    match          = optional(string, "capacity-reservations-only")
    end_date       = optional(string)
  })
  default = null

  validation {
    condition     = var.reservation == null || contains(["capacity-reservations-only", "capacity-reservations-first"], try(var.reservation.match, ""))
    error_message = "reservation.match must be capacity-reservations-only or capacity-reservations-first."
  }

  validation {
    condition     = var.reservation == null || try(var.reservation.instance_count, 0) >= 1
    error_message = "reservation.instance_count must be at least 1."
  }
}

variable "capacity_block" {
  description = "Reserved pools: BUY the EC2 Capacity Block for ML with this offering id instead of creating a capacity reservation. A purchase cannot be cancelled and `terraform destroy` only forgets it; leave null unless you mean to pay for it."
  type = object({
    offering_id = string
  })
  default = null

  validation {
    condition     = var.capacity_block == null || can(regex("^cb-[0-9a-z]+$", try(var.capacity_block.offering_id, "")))
    error_message = "capacity_block.offering_id must be a capacity block offering id (cb-...)."
  }
}

variable "ami_id" {
  description = "AMI of the nodes. null: read ami_ssm_parameter (AWS's public parameter for the current GPU AMI)."
  type        = string
  default     = null
}

variable "ami_ssm_parameter" {
  description = "SSM public parameter holding the GPU AMI id, used when ami_id is null. The default is the Deep Learning Base OSS AMI with the NVIDIA driver (Ubuntu 24.04, x86_64), which ships Python 3.12 (pyctl-agent needs 3.11+)."
  type        = string
  nullable    = false
  default     = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"
}

variable "root_device_name" {
  description = "Root device of the AMI (/dev/sda1 on Ubuntu AMIs, /dev/xvda on Amazon Linux)."
  type        = string
  nullable    = false
  default     = "/dev/sda1"
}

variable "root_volume_gb" {
  description = "Size of the encrypted gp3 root volume: OS, drivers, containers and, without local NVMe, the model cache."
  type        = number
  nullable    = false
  default     = 200

  validation {
    condition     = var.root_volume_gb >= 50 && var.root_volume_gb <= 16384
    error_message = "root_volume_gb must be between 50 and 16384."
  }
}

variable "root_volume_iops" {
  description = "Provisioned IOPS of the gp3 root volume."
  type        = number
  nullable    = false
  default     = 6000
}

variable "root_volume_throughput" {
  description = "Provisioned throughput (MiB/s) of the gp3 root volume: model loading reads it at this rate."
  type        = number
  nullable    = false
  default     = 500

  validation {
    condition     = var.root_volume_throughput >= 125 && var.root_volume_throughput <= 1000
    error_message = "root_volume_throughput must be between 125 and 1000 MiB/s (gp3)."
  }
}

variable "ebs_kms_key_arn" {
  description = "Customer KMS key for the root volume. null: the account's default EBS key."
  type        = string
  default     = null
}

variable "ingress" {
  description = "Who may reach the nodes: source CIDRs and/or security groups, on the given TCP ports (serving, metrics). Nothing else is let in."
  type = object({
    cidrs              = optional(list(string), [])
    security_group_ids = optional(list(string), [])
    ports              = optional(list(number), [8000, 9400])
  })
  default = {}

  validation {
    condition     = !contains(var.ingress.cidrs, "0.0.0.0/0") && !contains(var.ingress.cidrs, "::/0")
    error_message = "ingress.cidrs must not open the pool to the whole internet; name the networks that need it."
  }

  validation {
    condition     = alltrue([for p in var.ingress.ports : p >= 1 && p <= 65535])
    error_message = "ingress.ports must be TCP ports between 1 and 65535."
  }
  nullable = false
}

variable "egress" {
  description = "Where the nodes may connect: CIDRs and TCP ports (S3, SSM, CloudWatch and package mirrors need 443; apt mirrors 80). Use VPC endpoints and narrow the CIDRs where you can."
  type = object({
    cidrs = optional(list(string), ["0.0.0.0/0"])
    ports = optional(list(number), [80, 443])
  })
  default  = {}
  nullable = false
}

variable "allow_intra_pool" {
  description = "Allow all traffic between the pool's own nodes (NCCL collectives for multi-node training and serving)."
  type        = bool
  nullable    = false
  default     = true
}

variable "model_cache" {
  description = "The env's model-cache bucket (outputs of the aws-model-cache module): the policy documents become the node role's only S3 (and KMS) permissions."
  type = object({
    bucket            = string
    key_prefix        = optional(string, "")
    read_policy_json  = string
    write_policy_json = string
  })
  nullable = false
}

variable "model" {
  description = "The model each node fetches into its NVMe cache at boot (name and version in the cache bucket). null: none."
  type = object({
    name    = string
    version = string
  })
  default = null

  validation {
    condition     = var.model == null || (can(regex("^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$", try(var.model.name, ""))) && can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", try(var.model.version, ""))))
    error_message = "model.name must be NAME or ORG/NAME and model.version a version label, both of letters, digits, '.', '_' and '-'."
  }
}

variable "nvme_path" {
  description = "Where the local NVMe instance store (RAID0 when several disks) is mounted: models/ and checkpoints/ live below it."
  type        = string
  nullable    = false
  default     = "/mnt/nvme"

  validation {
    condition     = can(regex("^/[A-Za-z0-9._/-]+$", var.nvme_path))
    error_message = "nvme_path must be an absolute path of letters, digits, '.', '_', '-' and '/'."
  }
}

variable "agent_bundle" {
  description = "The node agent bundle in the model-cache bucket (aws-model-cache's agent_bundle output): the bootstrap downloads s3://bucket/key, installs it only if its sha256 matches, with pip --no-index --require-hashes (no public index, no NAT)."
  type = object({
    bucket = string
    key    = string
    sha256 = string
  })
  nullable = false

  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.agent_bundle.sha256)) && can(regex("^([A-Za-z0-9._-]+/)*agent/[0-9a-f]{64}\\.tar\\.gz$", var.agent_bundle.key)) && endswith(var.agent_bundle.key, "/${var.agent_bundle.sha256}.tar.gz") && can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.agent_bundle.bucket))
    error_message = "agent_bundle must name an S3 bucket, a key [PREFIX/]agent/<sha256>.tar.gz and its 64-hex-digit sha256."
  }
}

variable "spot_job" {
  description = "Spot pools: the job name the spot watcher checkpoints under (tag pyctl:job). null: the pool name."
  type        = string
  default     = null
}

variable "boot_secrets" {
  description = "Secrets the node reads at boot BY NAME into /etc/pyctl/secrets.env (mode 0600), such as a Hugging Face token: env_var plus exactly one of ssm_parameter or secrets_manager_secret. The role may read exactly these; values never appear in user data, variables or outputs."
  type = list(object({
    env_var                = string
    ssm_parameter          = optional(string)
    secrets_manager_secret = optional(string)
  }))
  default = []

  validation {
    condition     = alltrue([for s in var.boot_secrets : can(regex("^[A-Z][A-Z0-9_]*$", s.env_var)) && ((s.ssm_parameter == null) != (s.secrets_manager_secret == null))])
    error_message = "Each boot secret needs an env_var (A-Z, 0-9, _) and exactly one of ssm_parameter or secrets_manager_secret."
  }

  validation {
    condition     = alltrue([for s in var.boot_secrets : can(regex("^[A-Za-z0-9_./+=@-]+$", coalesce(s.ssm_parameter, s.secrets_manager_secret, "-")))])
    error_message = "Boot secret names may hold letters, digits and _ . / + = @ - only."
  }
  nullable = false
}

variable "auto_shutdown" {
  description = "Opt the pool's instances in to the idle-GPU watchdog (tag AutoShutdown)."
  type        = bool
  nullable    = false
  default     = true
}

variable "watchdog_may_terminate" {
  description = "Let the watchdog terminate idle one-time spot instances, which cannot be stopped (tag pyctl:spot-terminate)."
  type        = bool
  nullable    = false
  default     = false
}

variable "cost_center" {
  description = "CostCenter tag. null: the one in var.tags, if any."
  type        = string
  default     = null
}

variable "detailed_monitoring" {
  description = "EC2 detailed (1-minute) monitoring."
  type        = bool
  nullable    = false
  default     = true
}

variable "cloudwatch_namespace" {
  description = "Namespace of the CloudWatch agent's GPU metrics (the watchdog reads nvidia_smi_utilization_gpu there)."
  type        = string
  nullable    = false
  default     = "CWAgent"
}

variable "checkpoint_retention" {
  description = "Spot pools: how many complete checkpoints the node agent keeps in the bucket (older ones are deleted)."
  type        = number
  nullable    = false
  default     = 3

  validation {
    condition     = var.checkpoint_retention >= 1 && floor(var.checkpoint_retention) == var.checkpoint_retention
    error_message = "checkpoint_retention must be a whole number of at least 1."
  }
}

variable "metrics_interval_seconds" {
  description = "Collection interval of the CloudWatch agent's GPU metrics."
  type        = number
  nullable    = false
  default     = 60
}

variable "tags" {
  description = "Tags for every resource (Env, CostCenter, team tags, ...); the pool's own tags are merged on top."
  type        = map(string)
  nullable    = false
  default     = {}
}
