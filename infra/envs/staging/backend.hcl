# Rendered by `pyctl render --env staging` from env.yaml. Do not edit; edit env.yaml.
# Partial backend configuration: terraform init -backend-config=backend.hcl
bucket       = "acme-tfstate-staging"
key          = "gpu-platform/staging.tfstate"
region       = "us-west-2"
encrypt      = true
use_lockfile = true
