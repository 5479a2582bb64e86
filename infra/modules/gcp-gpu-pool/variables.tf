variable "name" {
  description = "Pool name (the key in env.yaml's pools). Used in resource names and the pyctl-pool label."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.name))
    error_message = "name must be 2-32 characters of lowercase letters, digits and '-', start with a letter and not end with '-'."
  }
}

variable "env" {
  description = "Environment name (dev, staging, prod...). Used in resource names and the pyctl-env label."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.env))
    error_message = "env must be 2-32 characters of lowercase letters, digits and '-', start with a letter and not end with '-'."
  }
}

variable "project" {
  description = "GCP project the pool runs in."
  type        = string
  nullable    = false
}

variable "region" {
  description = "Region of the pool (its zones must be in it)."
  type        = string
  nullable    = false
}

variable "network" {
  description = "VPC network self link or path (projects/P/global/networks/N); null lets GCE take it from the subnetwork."
  type        = string
  default     = null
}

variable "subnetwork" {
  description = "Subnetwork self link or path (projects/P/regions/R/subnetworks/S) the nodes attach to. Nodes get no external IP: the subnet needs Private Google Access (or Cloud NAT) to reach Google APIs and package mirrors."
  type        = string
  nullable    = false
}

variable "pool" {
  description = "The pool, as `pyctl render` writes it into gcp_pools (see README for each field)."
  type = object({
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
    fallback               = optional(string, "none")
  })

  validation {
    condition     = contains(["reserved", "on_demand", "spot"], var.pool.capacity)
    error_message = "pool.capacity must be one of reserved, on_demand, spot."
  }

  validation {
    condition     = can(regex("^(n1|a2|a3|a4|a4x|g2|g4)-[a-z0-9-]+$", var.pool.machine_type))
    error_message = "pool.machine_type must be a GPU machine type: n1-* with an accelerator_type, or an accelerator-optimized a2-*, a3-*, a4-*, a4x-*, g2-* or g4-* type."
  }

  validation {
    condition = (
      startswith(var.pool.machine_type, "n1-")
      ? var.pool.accelerator_type != null && var.pool.accelerator_count >= 1
      : var.pool.accelerator_type == null && var.pool.accelerator_count == 0
    )
    error_message = "pool.accelerator_type/accelerator_count: N1 machine types need an attached accelerator (e.g. nvidia-tesla-t4, count >= 1); accelerator-optimized types carry their GPUs and take none."
  }

  validation {
    condition     = var.pool.capacity == "spot" ? contains(["STOP", "DELETE"], coalesce(var.pool.termination_action, "-")) : var.pool.termination_action == null
    error_message = "pool.termination_action must be STOP or DELETE for spot pools, and null otherwise."
  }

  validation {
    condition     = contains(["none", "on_demand"], var.pool.fallback) && (var.pool.fallback == "none" || var.pool.capacity == "spot")
    error_message = "pool.fallback must be none or on_demand, and on_demand only for spot pools."
  }

  validation {
    condition     = contains(["regional", "zonal"], var.pool.distribution) && length(var.pool.zones) >= 1 && (var.pool.distribution == "regional" || length(var.pool.zones) == 1)
    error_message = "pool.distribution must be regional (one or more zones) or zonal (exactly one zone)."
  }

  validation {
    condition     = var.pool.min_size >= 0 && var.pool.min_size <= var.pool.desired_size && var.pool.desired_size <= var.pool.max_size
    error_message = "pool sizes must satisfy 0 <= min_size <= desired_size <= max_size."
  }

  validation {
    condition = (
      var.pool.capacity == "reserved"
      ? var.pool.reservation != null && var.pool.distribution == "zonal"
      : var.pool.reservation == null
    )
    error_message = "pool.reservation is required for reserved pools (and only for them); a reservation lives in one zone, so reserved pools must be zonal."
  }

  validation {
    condition     = var.pool.reservation == null || try(var.pool.reservation.instance_count >= var.pool.max_size, false)
    error_message = "pool.reservation.instance_count must be at least max_size: instances pinned to a specific reservation cannot start outside it."
  }

  validation {
    condition = alltrue([
      for k, v in var.pool.tags : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))
    ])
    error_message = "pool.tags become labels: keys must match ^[a-z][a-z0-9_-]{0,62}$ and values ^[a-z0-9_-]{0,63}$."
  }

  validation {
    condition     = var.pool.local_ssd_count >= 0 && var.pool.local_ssd_count <= 24 && var.pool.boot_disk_gb >= 50
    error_message = "pool.local_ssd_count must be 0-24 and pool.boot_disk_gb at least 50."
  }
  nullable = false
}

variable "labels" {
  description = "Labels for every labelled resource, in GCP label form (the gcp stack converts the env's tags). pool.tags and the pyctl-* keys are merged in; pyctl-* keys win."
  type        = map(string)
  nullable    = false
  default     = {}

  validation {
    condition = alltrue([
      for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))
    ])
    error_message = "labels keys must match ^[a-z][a-z0-9_-]{0,62}$ and values ^[a-z0-9_-]{0,63}$ (GCP label rules)."
  }
}

variable "model_cache" {
  description = "The GCS model cache the nodes read models from and write checkpoints to (outputs bucket and key_prefix of gcp-model-cache)."
  type = object({
    bucket     = string
    key_prefix = optional(string, "")
  })
  nullable = false
}

variable "checkpoint_job" {
  description = "Job name under which spot nodes upload checkpoints (checkpoints/JOB/step-N/); null uses the pool name."
  type        = string
  default     = null

  validation {
    condition     = var.checkpoint_job == null || can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", coalesce(var.checkpoint_job, "x")))
    error_message = "checkpoint_job must be letters, digits, '.', '_' or '-', starting with a letter or digit."
  }
}

variable "model_version" {
  description = "Version of pool.model to fetch at boot (models/NAME/VERSION/); null fetches the newest complete version."
  type        = string
  default     = null
}

variable "nvme_path" {
  description = "Mount point of the local SSD cache (RAID 0 over all local NVMe SSDs)."
  type        = string
  nullable    = false
  default     = "/mnt/nvme"

  validation {
    condition     = can(regex("^/[A-Za-z0-9._/-]+$", var.nvme_path))
    error_message = "nvme_path must be an absolute path of letters, digits, '.', '_', '-' and '/'."
  }
}

variable "source_image" {
  description = "Boot image (self link, projects/P/global/images/family/F, or a family URL). It must ship NVIDIA drivers signed for Secure Boot; the default Ubuntu 24.04 accelerator image (NVIDIA 580) does, with Python 3.12 (pyctl-agent needs 3.11+)."
  type        = string
  nullable    = false
  default     = "projects/ubuntu-os-accelerator-images/global/images/family/ubuntu-accelerator-2404-amd64-with-nvidia-580"
}

variable "boot_disk_type" {
  description = "Boot disk type; null picks hyperdisk-balanced for machine types that only take Hyperdisk (a3-ultragpu, a4, a4x) and pd-balanced otherwise."
  type        = string
  default     = null
}

variable "boot_disk_kms_key" {
  description = "Cloud KMS key self link for the boot disk; null keeps Google-managed encryption. The Compute Engine service agent needs roles/cloudkms.cryptoKeyEncrypterDecrypter on it."
  type        = string
  default     = null
}

variable "agent_bundle" {
  description = "The node agent bundle in the model-cache bucket (gcp-model-cache's agent_bundle output): the startup script downloads gs://bucket/key, installs it only if its sha256 matches, with pip --no-index --require-hashes (no public index, no Cloud NAT)."
  type = object({
    bucket = string
    key    = string
    sha256 = string
  })
  nullable = false

  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.agent_bundle.sha256)) && can(regex("^([A-Za-z0-9._-]+/)*agent/[0-9a-f]{64}\\.tar\\.gz$", var.agent_bundle.key)) && endswith(var.agent_bundle.key, "/${var.agent_bundle.sha256}.tar.gz") && can(regex("^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$", var.agent_bundle.bucket))
    error_message = "agent_bundle must name a GCS bucket, an object [PREFIX/]agent/<sha256>.tar.gz and its 64-hex-digit sha256."
  }
}

variable "secure_boot" {
  description = "Shielded VM Secure Boot. Turn off only for images whose GPU driver is not signed (vTPM and integrity monitoring stay on)."
  type        = bool
  nullable    = false
  default     = true
}

variable "network_tags" {
  description = "Extra network tags for firewall rules (the module adds pyctl-gpu and the pool's resource name)."
  type        = list(string)
  nullable    = false
  default     = []
}

variable "shutdown_budget_seconds" {
  description = "Seconds the shutdown script gives the trainer and pyctl-agent to upload a final checkpoint (Spot VMs get about 30 s in total)."
  type        = number
  nullable    = false
  default     = 25

  validation {
    condition     = var.shutdown_budget_seconds >= 5 && var.shutdown_budget_seconds <= 28
    error_message = "shutdown_budget_seconds must be 5-28: GCE gives a preempted Spot VM about 30 s before it is stopped."
  }
}
