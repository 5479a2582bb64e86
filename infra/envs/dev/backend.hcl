# Rendered by `pyctl render --env dev` from env.yaml. Do not edit; edit env.yaml.
# Partial backend configuration: terraform init -backend-config=backend.hcl
bucket       = "acme-tfstate-dev"
key          = "gpu-platform/dev.tfstate"
region       = "us-east-1"
encrypt      = true
use_lockfile = true
