terraform {
  required_version = ">= 1.6.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 7.0" # gcp-gpu-pool sets delete_at_time on reservations (added in 6.40)
    }
  }
}
