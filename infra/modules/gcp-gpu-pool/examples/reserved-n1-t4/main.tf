# A reserved pool: two n1-standard-8 VMs with one attached T4 each (guest_accelerator), pinned to a
# specific reservation in one zone that ends at the given time. The VMs are never Spot and never idle-stopped.

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
  project = "acme-ml-prod"
  region  = "us-central1"
}

module "pool" {
  source = "../.."

  name       = "t4-serve"
  env        = "prod"
  project    = "acme-ml-prod"
  region     = "us-central1"
  subnetwork = "projects/acme-ml-prod/regions/us-central1/subnetworks/gpu-us-central1"

  pool = {
    capacity          = "reserved"
    machine_type      = "n1-standard-8"
    gpu               = "t4"
    gpus_per_instance = 1
    accelerator_type  = "nvidia-tesla-t4"
    accelerator_count = 1
    local_ssd_count   = 1
    boot_disk_gb      = 150
    distribution      = "zonal"
    zones             = ["us-central1-a"]
    min_size          = 2
    desired_size      = 2
    max_size          = 2
    reservation       = { instance_count = 2, end_date = "2027-06-30T00:00:00Z" }
    auto_shutdown     = false
  }

  model_cache = { bucket = "acme-prod-gpu-models-gcs" }
  # The agent bundle pyctl render builds (`python -m pyctl.node_bundle build gcp DIR` prints its sha256 and key);
  # upload it with the model-cache module's agent_bundle input and pass that module's agent_bundle output.
  agent_bundle = {
    bucket = "acme-prod-gpu-models-gcs"
    key    = "agent/9f2c6a7d41b3e58f0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7.tar.gz"
    sha256 = "9f2c6a7d41b3e58f0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7"
  }
}

output "reservation" {
  value = module.pool.reservation
}
