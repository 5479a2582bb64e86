variable "account_id" {
  description = "The AWS account this bootstrap is applied to; the provider refuses any other."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.account_id))
    error_message = "account_id must be a 12-digit AWS account ID."
  }
}

variable "region" {
  description = "Region of the state bucket and its KMS key."
  type        = string
  default     = "us-east-1"
}

variable "state_bucket" {
  description = "Name of the S3 bucket for Terraform state (env.yaml backend.s3.bucket of the envs in this account)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.state_bucket))
    error_message = "state_bucket must be a valid S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)."
  }
}

variable "github_repository" {
  description = "The GitHub repository (OWNER/NAME) whose workflows may assume the roles."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must be OWNER/NAME."
  }
}

variable "envs" {
  description = <<-EOT
    The envs whose state lives in this account, by name (the GitHub environment of the same name approves
    their applies). state_key is env.yaml backend.s3.key; the env's apply role may write only that key.
  EOT
  type = map(object({
    state_key = string
  }))

  validation {
    condition     = length(var.envs) > 0 && alltrue([for name in keys(var.envs) : can(regex("^[a-z][a-z0-9-]{0,30}$", name))])
    error_message = "envs needs at least one env; names are lowercase letters, digits and hyphens (as in infra/envs/)."
  }
}

variable "create_oidc_provider" {
  description = "Create the account's GitHub OIDC provider (false when the account already has one: there can be only one per URL)."
  type        = bool
  default     = true
}

variable "plan_branch" {
  description = "Branch whose workflows (the scheduled drift check) may assume the plan role besides pull requests."
  type        = string
  default     = "main"
}

variable "apply_policy_arns" {
  description = <<-EOT
    Managed policies of every apply role, besides the inline IAM and state statements. PowerUserAccess covers
    EC2, S3, Lambda, EventBridge, SQS, SNS, DynamoDB and logs but no IAM: the IAM the modules need is granted
    inline, only on names of the env's own roles.
  EOT
  type        = list(string)
  default     = ["arn:aws:iam::aws:policy/PowerUserAccess"]
}

variable "noncurrent_state_days" {
  description = "Days an overwritten state version is kept (recover from a bad apply by restoring one)."
  type        = number
  default     = 90

  validation {
    condition     = var.noncurrent_state_days >= 1
    error_message = "noncurrent_state_days must be at least 1."
  }
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
