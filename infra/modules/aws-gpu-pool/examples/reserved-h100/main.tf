# A reserved pool: two p5.48xlarge (8 x H100 each) in a targeted capacity reservation that the Auto
# Scaling group is pinned to (capacity-reservations-only: it never launches outside the reservation).

terraform {
  required_version = ">= 1.6.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0"
    }
  }
}

provider "aws" {
  region = "us-east-1"
}

module "model_cache" {
  source = "../../../aws-model-cache"

  bucket_name = "acme-prod-gpu-models"
  kms_key_arn = "arn:aws:kms:us-east-1:333333333333:key/0b7e1d6a-2f3c-4e5d-8a9b-1c2d3e4f5a6b"
  tags        = { Env = "prod", CostCenter = "ml-inference" }
}

module "pool" {
  source = "../.."

  name              = "h100-baseline"
  env               = "prod"
  capacity          = "reserved"
  instance_type     = "p5.48xlarge"
  gpu               = "h100"
  gpus_per_instance = 8

  vpc_id            = "vpc-0c1d2e3f4a5b60003"
  subnet_ids        = ["subnet-0c1d2e3f4a5b60031"]
  availability_zone = "us-east-1a"

  min_size     = 2
  desired_size = 2
  max_size     = 2

  reservation = {
    instance_count = 2
    match          = "capacity-reservations-only"
  }
  # To BUY a capacity block instead (cannot be cancelled):
  # capacity_block = { offering_id = "cb-0123456789abcdef0" }

  root_volume_gb = 1000
  model_cache = {
    bucket            = module.model_cache.bucket
    key_prefix        = module.model_cache.key_prefix
    read_policy_json  = module.model_cache.read_policy_json
    write_policy_json = module.model_cache.write_policy_json
  }
  model = { name = "llama-3-70b-instruct", version = "2024-07-23" }
  # The agent bundle pyctl render builds (`python -m pyctl.node_bundle build aws DIR` prints its sha256 and key);
  # upload it with the model-cache module's agent_bundle input and pass that module's agent_bundle output.
  agent_bundle = {
    bucket = module.model_cache.bucket
    key    = "agent/9f2c6a7d41b3e58f0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7.tar.gz"
    sha256 = "9f2c6a7d41b3e58f0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7"
  }

  ingress = {
    security_group_ids = ["sg-0c1d2e3f4a5b60301"]
  }
  auto_shutdown = false
  tags          = { Env = "prod", CostCenter = "ml-inference" }
}

output "capacity_reservation_id" {
  value = module.pool.capacity_reservation_id
}
