variable "project" {
  description = "GCP project that owns the bucket."
  type        = string
  nullable    = false
}

variable "bucket_name" {
  description = "Name of the GCS bucket that holds model weights (models/) and training checkpoints (checkpoints/); globally unique."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_.-]{1,61}[a-z0-9]$", var.bucket_name)) && !can(regex("^goog", var.bucket_name))
    error_message = "bucket_name must be 3-63 characters of lowercase letters, digits, '-', '_' or '.', start and end with a letter or digit, and not start with \"goog\"."
  }
}

variable "location" {
  description = "Bucket location: a region (US-CENTRAL1), dual-region or multi-region (US). Keep it next to the GPU pools: cross-region reads cost egress and time."
  type        = string
  nullable    = false
  default     = "US"
}

variable "kms_key_name" {
  description = "Cloud KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K) for default object encryption; null keeps Google-managed encryption. The module grants the project's Cloud Storage service agent use of the key."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_name == null || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", coalesce(var.kms_key_name, "-")))
    error_message = "kms_key_name must look like projects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY."
  }
}

variable "noncurrent_version_days" {
  description = "Days a replaced or deleted object version is kept before the lifecycle rule deletes it."
  type        = number
  nullable    = false
  default     = 30

  validation {
    condition     = var.noncurrent_version_days >= 1 && floor(var.noncurrent_version_days) == var.noncurrent_version_days
    error_message = "noncurrent_version_days must be a whole number of days, at least 1."
  }
}

variable "abort_incomplete_multipart_days" {
  description = "Days after which an unfinished multipart upload (a preempted checkpoint upload) is aborted and its parts freed."
  type        = number
  nullable    = false
  default     = 3

  validation {
    condition     = var.abort_incomplete_multipart_days >= 1 && floor(var.abort_incomplete_multipart_days) == var.abort_incomplete_multipart_days
    error_message = "abort_incomplete_multipart_days must be a whole number of days, at least 1."
  }
}

variable "key_prefix" {
  description = "Optional object-name prefix in front of pyctl's layout: models under <key_prefix>models/NAME/VERSION/, checkpoints under <key_prefix>checkpoints/JOB/step-N/. Empty: the bucket root."
  type        = string
  nullable    = false
  default     = ""

  validation {
    condition     = var.key_prefix == "" || can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*/$", var.key_prefix))
    error_message = "key_prefix must be empty or a relative object prefix ending in '/', such as \"team-a/\"."
  }
}

variable "pool_service_accounts" {
  description = "GPU pool service accounts keyed by pool name (email addresses). Each may list the bucket, read the model and checkpoint prefixes, and write and delete under the checkpoint prefix."
  type        = map(string)
  nullable    = false
  default     = {}

  validation {
    condition     = alltrue([for email in values(var.pool_service_accounts) : can(regex("^[^@\\s]+@[^@\\s]+\\.iam\\.gserviceaccount\\.com$", email))])
    error_message = "pool_service_accounts values must be service account emails (NAME@PROJECT.iam.gserviceaccount.com)."
  }
}

variable "access_log_bucket" {
  description = "Bucket that receives usage logs for this bucket; null disables access logging."
  type        = string
  default     = null
}

variable "force_destroy" {
  description = "Allow `terraform destroy` to delete a bucket that still holds objects. Keep false outside throwaway envs: models and checkpoints are expensive to rebuild."
  type        = bool
  nullable    = false
  default     = false
}

variable "labels" {
  description = "Labels for the bucket (GCP label rules: lowercase keys and values of letters, digits, '_' and '-')."
  type        = map(string)
  nullable    = false
  default     = {}

  validation {
    condition = alltrue([
      for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))
    ])
    error_message = "labels keys must match ^[a-z][a-z0-9_-]{0,62}$ and values ^[a-z0-9_-]{0,63}$."
  }
}

variable "agent_bundle" {
  description = "The node agent bundle `pyctl render` builds (path: the .tar.gz on disk; sha256: its hex digest). The module uploads it to <key_prefix>agent/<sha256>.tar.gz, which the pools' service accounts may read. null: no bundle."
  type = object({
    path   = string
    sha256 = string
  })
  default = null

  validation {
    condition     = var.agent_bundle == null || can(regex("^[0-9a-f]{64}$", try(var.agent_bundle.sha256, "")))
    error_message = "agent_bundle.sha256 must be 64 lowercase hex digits (pyctl render writes it)."
  }
}
