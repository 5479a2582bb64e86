variable "project_id" {
  description = "The GCP project this bootstrap is applied to (env.yaml clouds.gcp.project of its envs)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a GCP project ID (6-30 lowercase letters, digits, hyphens)."
  }
}

variable "region" {
  description = "Default region of the provider."
  type        = string
  default     = "us-central1"
}

variable "state_bucket" {
  description = "Name of a GCS bucket to create for Terraform state (env.yaml backend.gcs.bucket); null when the envs keep their state in S3."
  type        = string
  default     = null

  validation {
    condition     = var.state_bucket == null || can(regex("^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$", var.state_bucket))
    error_message = "state_bucket must be a valid GCS bucket name."
  }
}

variable "state_location" {
  description = "Location of the state bucket (a region or multi-region)."
  type        = string
  default     = "US"
}

variable "state_kms_key_name" {
  description = "Cloud KMS key (projects/.../cryptoKeys/...) for the state bucket; null: Google-managed encryption."
  type        = string
  default     = null
}

variable "github_repository" {
  description = "The GitHub repository (OWNER/NAME) whose workflows may impersonate the service accounts."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must be OWNER/NAME."
  }
}

variable "envs" {
  description = <<-EOT
    The envs that use this project, by name (the GitHub environment of the same name approves their applies).
    state_prefix is env.yaml backend.gcs.prefix when the env's state is in var.state_bucket (null otherwise).
  EOT
  type = map(object({
    state_prefix = optional(string)
  }))

  validation {
    # service account IDs are at most 30 characters: "pyctl-ci-apply-" leaves 15 for the env name
    condition     = length(var.envs) > 0 && alltrue([for name in keys(var.envs) : can(regex("^[a-z][a-z0-9-]{0,14}$", name))])
    error_message = "envs needs at least one env; names are 1-15 lowercase letters, digits and hyphens."
  }
}

variable "plan_branch" {
  description = "Branch whose workflows (the scheduled drift check) may use the plan service account besides pull requests."
  type        = string
  default     = "main"
}

variable "pool_id" {
  description = "ID of the workload identity pool for GitHub Actions."
  type        = string
  default     = "github-actions"
}

variable "plan_project_roles" {
  description = "Project roles of the plan service account: read-only, including IAM policies and objects (the watchdog's function source) that a refresh reads."
  type        = list(string)
  default     = ["roles/viewer", "roles/iam.securityReviewer", "roles/storage.objectViewer"]
}

variable "apply_project_roles" {
  description = "Project roles of each env's apply service account: what the GCP modules create (GPU pools, cache bucket, watchdog)."
  type        = list(string)
  default = [
    "roles/compute.admin",
    "roles/storage.admin",
    "roles/iam.serviceAccountAdmin",
    "roles/iam.serviceAccountUser",
    "roles/iam.roleAdmin",
    "roles/resourcemanager.projectIamAdmin",
    "roles/cloudscheduler.admin",
    "roles/logging.configWriter",
  ]
}

variable "labels" {
  description = "Labels on the state bucket."
  type        = map(string)
  default     = {}
}
