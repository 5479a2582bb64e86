# A realistic input for planning this root: `terraform plan -var-file=example.tfvars`.
# Copy it to terraform.tfvars and edit (docs/setup.md); it holds IDs, no secrets.
project_id        = "acme-ml-prod"
region            = "us-central1"
state_bucket      = "acme-tfstate-gcp-prod"
state_location    = "US"
github_repository = "acme/gpu-platform"

envs = {
  prod    = { state_prefix = "gpu-platform/prod" }
  staging = {}
}

labels = {
  team = "ml-platform"
}
