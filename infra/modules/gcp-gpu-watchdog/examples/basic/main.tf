# The GCP watchdog for one env: pyctl builds the zip (`pyctl render`), this passes its path and hash.

terraform {
  required_version = ">= 1.6.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0"
    }
  }
}

provider "google" {
  project = "acme-ml-dev"
  region  = "us-central1"
}

module "gpu_watchdog" {
  source = "../.."

  project          = "acme-ml-dev"
  region           = "us-central1"
  name             = "dev-gpu-watchdog"
  env              = "dev"
  filename         = "${path.module}/gcp_watchdog.zip"
  source_code_hash = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
  source_bucket    = "acme-dev-gpu-models-gcs"

  schedule = "*/15 * * * *"
  settings = {
    idle_minutes        = 30
    threshold_percent   = 5
    max_actions_per_run = 5
    dry_run             = true # watch the decisions in the logs for a few days first
  }
  hourly_prices = { "g2-standard-24" = 2.0, "a2-highgpu-8g" = 29.39 }
  labels        = { env = "dev" }
}

output "function_uri" {
  value = module.gpu_watchdog.function_uri
}
