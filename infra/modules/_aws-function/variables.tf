variable "name" {
  description = "Function name; also names the log group (/aws/lambda/<name>) and the dead-letter queue (<name>-dlq)."
  type        = string
  nullable    = false
}

variable "role_name" {
  description = "Name of the execution role."
  type        = string
  nullable    = false
}

variable "description" {
  description = "The function's description."
  type        = string
  nullable    = false
}

variable "filename" {
  description = "Path of the function zip built by pyctl."
  type        = string
  nullable    = false
}

variable "source_code_hash" {
  description = "base64(sha256) of the zip, from pyctl's build."
  type        = string
  nullable    = false
}

variable "handler" {
  description = "The entry point in the zip (module.function of the pyctl package, e.g. pyctl.functions.gpu_watchdog_aws.handler)."
  type        = string
  nullable    = false
}

variable "runtime" {
  description = "Lambda runtime."
  type        = string
  nullable    = false
  default     = "python3.12"
}

variable "environment" {
  description = "Environment variables of the function (settings only: secrets are read at run time by name)."
  type        = map(string)
  nullable    = false
}

variable "code_policy_name" {
  description = "Name of the inline policy with what the code calls."
  type        = string
  nullable    = false
}

variable "code_policy_json" {
  description = "The policy document (JSON) of what the code calls, declared beside the code's verbs."
  type        = string
  nullable    = false
}

variable "runtime_policy_name" {
  description = "Name of the inline policy with what the runtime needs around the code."
  type        = string
  nullable    = false
  default     = "lambda-runtime"
}

variable "timeout_seconds" {
  description = "Function timeout."
  type        = number
  nullable    = false
}

variable "memory_size" {
  description = "Function memory in MB (it also sets the CPU share)."
  type        = number
  nullable    = false
  default     = 256
}

variable "reserved_concurrency" {
  description = "Reserved concurrent executions (1: one run at a time)."
  type        = number
  nullable    = false
}

variable "log_retention_days" {
  description = "Days to keep the function's logs."
  type        = number
  nullable    = false
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key for logs, the queue and the environment; null uses AWS-managed encryption."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  nullable    = false
}
