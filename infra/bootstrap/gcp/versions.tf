terraform {
  required_version = ">= 1.11.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0"
    }
  }

  # Local state on the first apply; then copy backend.tf.example to backend.tf and run
  # `terraform init -migrate-state` (docs/setup.md).
}

provider "google" {
  project = var.project_id
  region  = var.region
}
