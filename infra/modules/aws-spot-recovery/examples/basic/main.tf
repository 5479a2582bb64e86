# A standalone training job on spot, replaced from its launch template when interrupted, with its
# checkpoints in the model-cache bucket. Build the zip first: `python -c "from pyctl.package import
# build_function_package as b; print(b('spot_recovery', 'build').base64sha256)"`.

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

module "spot_recovery" {
  source = "../.."

  name                    = "pyctl-dev-spot-recovery"
  lambda_filename         = "${path.module}/build/spot_recovery.zip"
  lambda_source_code_hash = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="

  policy = {
    max_interruptions = 3
    window_hours      = 6
    cooldown_hours    = 2
  }

  jobs = {
    "llm-finetune" = {
      launch_template_id = "lt-0a1b2c3d4e5f60001"
      instance_types     = ["g6.xlarge", "g6.2xlarge"]
      subnet_ids         = ["subnet-0a1b2c3d4e5f60011", "subnet-0a1b2c3d4e5f60012"]
      security_group_ids = ["sg-0a1b2c3d4e5f60021"]
    }
  }
  instance_role_arns = ["arn:aws:iam::111111111111:role/pyctl-dev-l4-spot-node"]

  checkpoint_bucket = "acme-dev-gpu-models"
  checkpoint_prefix = ""

  tags = { Env = "dev", ManagedBy = "pyctl" }
}

output "table_name" {
  description = "The interruption table."
  value       = module.spot_recovery.table_name
}
