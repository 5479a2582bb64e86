# GCP half of the env: the GCS model cache and the GCP GPU pools (overflow capacity when AWS is short).
# Values come from terraform.tfvars.json (`pyctl render`); the types are in infra/stacks/gcp/variables.tf.

# The google provider's source and lower bound are declared with the AWS one in main.tf (a module has one
# required_providers block).
provider "google" {
  project = var.gcp.project
  region  = var.gcp.region
}

module "gcp" {
  source = "../../stacks/gcp"

  env         = var.env
  tags        = var.tags
  gcp         = var.gcp
  pools       = var.gcp_pools
  model_cache = var.model_cache

  watchdog          = var.watchdog
  function_packages = var.function_packages
}
