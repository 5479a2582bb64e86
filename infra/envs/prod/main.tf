# The prod environment: a thin root module. Edit env.yaml, not this file; `pyctl render --env prod`
# writes terraform.tfvars.json and backend.hcl beside it.

terraform {
  required_version = ">= 1.6.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0"
    }
    google = {
      source  = "hashicorp/google"
      version = ">= 7.0"
    }
  }

  # Partial configuration: `terraform init -backend-config=backend.hcl` (pyctl does this).
  backend "s3" {}
}

provider "aws" {
  region              = var.aws.region
  allowed_account_ids = [var.aws.account_id]

  default_tags {
    tags = var.tags
  }
}

module "aws" {
  source = "../../stacks/aws"

  env               = var.env
  tags              = var.tags
  aws               = var.aws
  pools             = var.aws_pools
  model_cache       = var.model_cache
  watchdog          = var.watchdog
  spot_recovery     = var.spot_recovery
  function_packages = var.function_packages
}
