variable "bucket_name" {
  description = "Name of the S3 bucket that holds model weights (models/) and training checkpoints (checkpoints/)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name: 3-63 lowercase letters, digits, dots and hyphens."
  }
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key for SSE-KMS. null: SSE-KMS with the AWS-managed key aws/s3."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID) or null."
  }
}

variable "access_log_bucket" {
  description = "Bucket that receives S3 server access logs for this bucket. null: no access logging."
  type        = string
  default     = null
}

variable "access_log_prefix" {
  description = "Key prefix of the access logs in access_log_bucket. null: \"s3-access/<bucket_name>/\"."
  type        = string
  default     = null
}

variable "noncurrent_version_days" {
  description = "Days a replaced or deleted object version is kept before it expires."
  type        = number
  nullable    = false
  default     = 30

  validation {
    condition     = var.noncurrent_version_days >= 1 && floor(var.noncurrent_version_days) == var.noncurrent_version_days
    error_message = "noncurrent_version_days must be a whole number of days, at least 1."
  }
}

variable "abort_incomplete_multipart_days" {
  description = "Days after which an unfinished multipart upload (a crashed model push or checkpoint upload) is aborted and its parts freed."
  type        = number
  nullable    = false
  default     = 3

  validation {
    condition     = var.abort_incomplete_multipart_days >= 1 && floor(var.abort_incomplete_multipart_days) == var.abort_incomplete_multipart_days
    error_message = "abort_incomplete_multipart_days must be a whole number of days, at least 1."
  }
}

variable "key_prefix" {
  description = "Optional key prefix in front of pyctl's layout: models under <key_prefix>models/NAME/VERSION/, checkpoints under <key_prefix>checkpoints/JOB/step-N/. Empty: the bucket root."
  type        = string
  nullable    = false
  default     = ""

  validation {
    condition     = var.key_prefix == "" || can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*/$", var.key_prefix))
    error_message = "key_prefix must be empty or a relative key prefix ending in '/', such as \"team-a/\"."
  }
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete a bucket that still holds objects. Keep false outside throwaway envs: the bucket holds the only copy of checkpoints."
  type        = bool
  nullable    = false
  default     = false
}

variable "tags" {
  description = "Tags for the bucket (Env, CostCenter, ...)."
  type        = map(string)
  nullable    = false
  default     = {}
}

variable "agent_bundle" {
  description = "The node agent bundle `pyctl render` builds (path: the .tar.gz on disk; sha256: its hex digest). The module uploads it to <key_prefix>agent/<sha256>.tar.gz, where the pools' nodes read it. null: no bundle."
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
