# Rendered by `pyctl render --env prod` from env.yaml. Do not edit; edit env.yaml.
# Partial backend configuration: terraform init -backend-config=backend.hcl
bucket       = "acme-tfstate-prod"
key          = "gpu-platform/prod.tfstate"
region       = "us-east-1"
encrypt      = true
use_lockfile = true
kms_key_id   = "arn:aws:kms:us-east-1:333333333333:key/6f1c2b9e-4c1a-4d7e-9c55-0f3e8a1b2c3d"
