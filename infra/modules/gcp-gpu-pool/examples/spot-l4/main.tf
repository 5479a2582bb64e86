# A Spot pool of g2-standard-24 (2 x L4, accelerator-optimized: no guest_accelerator) across two zones,
# with its model cache. Preempted VMs are stopped (STOP) and restarted by the group when capacity returns.

terraform {
  required_version = ">= 1.6.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 7.0" # delete_at_time on google_compute_reservation (added in 6.40)
    }
  }
}

provider "google" {
  project = "acme-ml-staging"
  region  = "us-central1"
}

locals {
  # A plain name (not the cache module's output): the cache grants the pool's account, the pool names the bucket.
  bucket = "acme-staging-gpu-models-gcs"
}

module "pool" {
  source = "../.."

  name       = "l4-overflow"
  env        = "staging"
  project    = "acme-ml-staging"
  region     = "us-central1"
  subnetwork = "projects/acme-ml-staging/regions/us-central1/subnetworks/gpu-us-central1"
  labels     = { team = "ml-platform", cost_center = "ml-platform" }

  pool = {
    capacity           = "spot"
    machine_type       = "g2-standard-24"
    gpu                = "l4"
    gpus_per_instance  = 2
    local_ssd_count    = 2
    boot_disk_gb       = 200
    distribution       = "regional"
    zones              = ["us-central1-a", "us-central1-b"]
    min_size           = 0
    desired_size       = 1
    max_size           = 4
    termination_action = "STOP"
    model              = "llama-3-8b-instruct"
  }

  model_cache   = { bucket = local.bucket }
  model_version = "2024-07-18"
  # The agent bundle pyctl render builds (`python -m pyctl.node_bundle build gcp DIR` prints its sha256 and key);
  # upload it with the model-cache module's agent_bundle input and pass that module's agent_bundle output.
  agent_bundle = {
    bucket = local.bucket
    key    = "agent/9f2c6a7d41b3e58f0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7.tar.gz"
    sha256 = "9f2c6a7d41b3e58f0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7"
  }
}

module "model_cache" {
  source = "../../../gcp-model-cache"

  project     = "acme-ml-staging"
  bucket_name = local.bucket
  location    = "US-CENTRAL1"

  pool_service_accounts = { "l4-overflow" = module.pool.service_account_email }
}

output "gpu_capacity" {
  value = module.pool.gpu_capacity
}
