terraform {
  required_version = ">= 1.6.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 7.0" # delete_at_time on google_compute_reservation (added in 6.40)
    }
  }
}
