terraform {
  # S3 native state locking (use_lockfile) is GA from 1.11; the envs' backends use it.
  required_version = ">= 1.11.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0"
    }
  }

  # Local state on the first apply; then copy backend.tf.example to backend.tf and run
  # `terraform init -migrate-state` (docs/setup.md): the bootstrap's state moves into the bucket it made.
}

provider "aws" {
  region              = var.region
  allowed_account_ids = [var.account_id]
}
