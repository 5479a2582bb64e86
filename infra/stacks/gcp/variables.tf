# The types match what `pyctl render` writes to terraform.tfvars.json (pyctl/render.py); env.yaml is
# validated there against the GPU catalog first, these blocks catch hand-edited or stale values at plan time.

variable "env" {
  description = "The environment: its name (labels, resource names) and whether it is protected."
  type = object({
    name      = string
    protected = bool
  })

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.env.name))
    error_message = "env.name must be 2-32 lowercase letters, digits and hyphens, starting with a letter (it is part of GCE resource names)."
  }
  nullable = false
}

variable "tags" {
  description = "The env's tags (Env, ManagedBy, CostCenter and its own). Turned into GCP labels: CamelCase keys become snake_case, keys and values lowercase, other characters '_'."
  type        = map(string)
  nullable    = false
  default     = {}
}

variable "gcp" {
  description = "The env's GCP project, region and network (the pools attach to the subnetwork, without external IPs)."
  type = object({
    project    = string
    region     = string
    network    = string
    subnetwork = string
  })

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.gcp.project))
    error_message = "gcp.project must be a GCP project id: 6-30 lowercase letters, digits and hyphens, starting with a letter."
  }

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.gcp.region))
    error_message = "gcp.region must be a GCP region such as us-central1."
  }

  validation {
    condition     = can(regex("^(https://www.googleapis.com/compute/v1/)?projects/[^/]+/regions/[^/]+/subnetworks/[^/]+$", var.gcp.subnetwork))
    error_message = "gcp.subnetwork must be projects/PROJECT/regions/REGION/subnetworks/NAME (or its self link)."
  }
  nullable = false
}

variable "pools" {
  description = "GCP GPU pools keyed by name, as `pyctl render` writes gcp_pools. capacity: reserved | on_demand | spot; spot pools take termination_action STOP | DELETE, reserved pools `reservation`. Each pool's own rules (capacity kind, GPU machine family, accelerators, termination action, zones, sizes, reservation) are validated by gcp-gpu-pool, whose errors name the pool (module.pool[\"NAME\"])."
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
  default = {}

  validation {
    condition     = alltrue([for name, p in var.pools : can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", name))])
    error_message = "Pool names must be 2-32 lowercase letters, digits and hyphens, starting with a letter (they are part of GCE resource names)."
  }

  validation {
    condition     = alltrue([for name, p in var.pools : p.reservation == null || try(can(regex("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$", p.reservation.end_date)) || p.reservation.end_date == null, false)])
    error_message = "reservation.end_date must be null or an RFC 3339 UTC time such as 2026-12-31T00:00:00Z."
  }
  nullable = false
}

variable "model_cache" {
  description = "Model cache: the GCS bucket (null: none), the models to cache (name, version) and the node's local SSD cache path. Other clouds' entries are ignored."
  type = object({
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

  validation {
    condition     = length(distinct([for m in var.model_cache.models : m.name])) == length(var.model_cache.models)
    error_message = "model_cache.models lists each model name once."
  }
  nullable = false
}

variable "source_image" {
  description = "Boot image for every GCP pool (an image with NVIDIA drivers signed for Secure Boot; the default is Ubuntu's accelerator image)."
  type        = string
  nullable    = false
  default     = "projects/ubuntu-os-accelerator-images/global/images/family/ubuntu-accelerator-2204-amd64-with-nvidia-550"
}

variable "agent_bundle" {
  description = "The node agent bundle pyctl render builds: path (relative to the env directory) and sha256 (hex). The stack uploads it into the model-cache bucket under <key_prefix>agent/<sha256>.tar.gz; the nodes install pyctl-agent from there, only if the hash matches."
  type = object({
    path   = string
    sha256 = string
  })
  nullable = false
}
