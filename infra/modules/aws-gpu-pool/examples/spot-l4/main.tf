# A spot pool of L4 nodes (g6.xlarge, g6.2xlarge: one L4 each) that fetch a model at boot and read a
# Hugging Face token from SSM Parameter Store by name.

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

  bucket_name = "acme-dev-gpu-models"
  tags        = { Env = "dev", CostCenter = "ml-platform" }
}

module "pool" {
  source = "../.."

  name              = "l4-spot"
  env               = "dev"
  capacity          = "spot"
  instance_type     = "g6.xlarge"
  instance_types    = ["g6.xlarge", "g6.2xlarge"]
  gpu               = "l4"
  gpus_per_instance = 1

  vpc_id     = "vpc-0a1b2c3d4e5f60001"
  subnet_ids = ["subnet-0a1b2c3d4e5f60011", "subnet-0a1b2c3d4e5f60012"]

  min_size     = 0
  desired_size = 1
  max_size     = 4

  spot = {
    allocation_strategy = "price-capacity-optimized"
    on_demand_base      = 0
    fallback            = "on_demand"
  }

  model_cache = {
    bucket            = module.model_cache.bucket
    key_prefix        = module.model_cache.key_prefix
    read_policy_json  = module.model_cache.read_policy_json
    write_policy_json = module.model_cache.write_policy_json
  }
  model = { name = "llama-3-8b-instruct", version = "2024-07-18" }
  # The agent bundle pyctl render builds (`python -m pyctl.node_bundle build aws DIR` prints its sha256 and key);
  # upload it with the model-cache module's agent_bundle input and pass that module's agent_bundle output.
  agent_bundle = {
    bucket = module.model_cache.bucket
    key    = "agent/9f2c6a7d41b3e58f0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7.tar.gz"
    sha256 = "9f2c6a7d41b3e58f0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7"
  }

  ingress = {
    cidrs = ["10.20.0.0/16"]
  }
  boot_secrets = [
    { env_var = "HF_TOKEN", ssm_parameter = "/pyctl/dev/hf-token" },
  ]

  watchdog_may_terminate = true
  tags                   = { Env = "dev", CostCenter = "ml-platform" }
}

output "gpu_capacity" {
  value = module.pool.gpu_capacity
}
