terraform {
  required_version = ">= 1.11.0" # the env roots' S3 backend uses use_lockfile (GA in Terraform 1.11)

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 7.0" # gcp-gpu-pool sets delete_at_time on reservations (added in 6.40)
    }
  }
}
