# A realistic input for planning this root: `terraform plan -var-file=example.tfvars`.
# Copy it to terraform.tfvars and edit (docs/setup.md); it holds IDs, no secrets.
account_id        = "333333333333"
region            = "us-east-1"
state_bucket      = "acme-tfstate-prod"
github_repository = "acme/gpu-platform"

envs = {
  prod = { state_key = "gpu-platform/prod.tfstate" }
}

tags = {
  team = "ml-platform"
}
