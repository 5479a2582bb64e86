# Rendered by `pyctl render --env prod` from env.yaml and the stacks' variables. Do not edit: edit env.yaml
# (the values) or infra/stacks (the types), then run `pyctl render`. Add resources of your own in another file.

terraform {
  # S3 native state locking (use_lockfile) is GA from Terraform 1.11.
  required_version = ">= 1.11.0"

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
  agent_bundle      = var.aws_agent_bundle
}

provider "google" {
  project = var.gcp.project
  region  = var.gcp.region
}

module "gcp" {
  source = "../../stacks/gcp"

  env               = var.env
  tags              = var.tags
  gcp               = var.gcp
  pools             = var.gcp_pools
  model_cache       = var.model_cache
  watchdog          = var.watchdog
  spot_recovery     = var.spot_recovery
  function_packages = var.function_packages
  agent_bundle      = var.gcp_agent_bundle
}
