terraform {
  required_version = ">= 1.11.0" # the env roots' S3 backend uses use_lockfile (GA in Terraform 1.11)

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0"
    }
  }
}
