# The watchdog for one env: pyctl builds the zip (`pyctl render`), this passes its path and hash.

terraform {
  required_version = ">= 1.6.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0"
    }
  }
}

provider "aws" {
  region = "us-east-1"
}

module "gpu_watchdog" {
  source = "../.."

  name             = "dev-gpu-watchdog"
  env              = "dev"
  filename         = "${path.module}/gpu_watchdog.zip"
  source_code_hash = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="

  settings = {
    idle_minutes        = 30
    threshold_percent   = 5
    max_actions_per_run = 5
    dry_run             = true # watch the decisions in the logs for a few days first
  }
  hourly_prices               = { "g6.xlarge" = 0.805, "p5.48xlarge" = 98.32 }
  notify_emails               = ["gpu-oncall@example.com"]
  slack_webhook_ssm_parameter = "/dev/gpu-watchdog/slack-webhook"

  tags = { Env = "dev" }
}

output "function_name" {
  value = module.gpu_watchdog.function_name
}
