# A model cache with a customer KMS key and access logging.

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

module "model_cache" {
  source = "../.."

  bucket_name             = "acme-dev-gpu-models"
  kms_key_arn             = "arn:aws:kms:us-east-1:111111111111:key/0b7e1d6a-2f3c-4e5d-8a9b-1c2d3e4f5a6b"
  access_log_bucket       = "acme-dev-s3-access-logs"
  noncurrent_version_days = 14

  tags = {
    Env        = "dev"
    CostCenter = "ml-platform"
  }
}

output "bucket" {
  value = module.model_cache.bucket
}

output "read_policy_json" {
  value = module.model_cache.read_policy_json
}
