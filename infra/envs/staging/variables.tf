# The values come from terraform.tfvars.json, rendered by `pyctl render` from env.yaml and validated
# there against the GPU catalog. Their exact types and validation blocks live in the stack modules.

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
  description = "AWS account, region and network; null when the env has no AWS."
  type        = any
  default     = null
}

variable "gcp" {
  description = "GCP project, region and network; null when the env has no GCP."
  type        = any
  default     = null
}

variable "aws_pools" {
  description = "AWS GPU pools keyed by name (see infra/stacks/aws/variables.tf for the type)."
  type        = any
  default     = {}
}

variable "gcp_pools" {
  description = "GCP GPU pools keyed by name (see infra/stacks/gcp/variables.tf for the type)."
  type        = any
  default     = {}
}

variable "model_cache" {
  description = "Model-cache buckets (aws, gcp), the models to cache, and the node NVMe cache path."
  type        = any
  nullable    = false
}

variable "watchdog" {
  description = "Idle-GPU watchdog settings."
  type        = any
  nullable    = false
}

variable "spot_recovery" {
  description = "Checkpoint-aware spot recovery settings."
  type        = any
  nullable    = false
}

variable "function_packages" {
  description = "Function zips built by pyctl: name => { path (relative to this directory), base64sha256 }."
  type = map(object({
    path         = string
    base64sha256 = string
  }))
  default = {}
}
