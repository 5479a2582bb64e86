# A model-cache bucket encrypted with a customer key, readable (models/, checkpoints/) and writable
# (checkpoints/) by one GPU pool's service account.

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

module "model_cache" {
  source = "../.."

  project                 = "acme-ml-dev"
  bucket_name             = "acme-dev-gpu-models-gcs"
  location                = "US-CENTRAL1"
  kms_key_name            = "projects/acme-ml-dev/locations/us-central1/keyRings/gpu/cryptoKeys/models"
  noncurrent_version_days = 14
  labels                  = { env = "dev", managed_by = "pyctl" }

  pool_service_accounts = {
    "l4-spot" = "dev-l4-spot-1a2b3c@acme-ml-dev.iam.gserviceaccount.com"
  }
}

output "bucket_url" {
  value = module.model_cache.bucket_url
}
