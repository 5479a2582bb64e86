output "bucket" {
  description = "Name of the model-cache bucket."
  value       = aws_s3_bucket.this.id
}

output "bucket_arn" {
  description = "ARN of the model-cache bucket."
  value       = aws_s3_bucket.this.arn
}

output "kms_key_arn" {
  description = "The customer KMS key encrypting the bucket, or null when the AWS-managed aws/s3 key is used."
  value       = var.kms_key_arn
}

output "key_prefix" {
  description = "The key prefix in front of models/ and checkpoints/ (pass it as --prefix to pyctl-agent)."
  value       = var.key_prefix
}

output "model_prefix" {
  description = "Key prefix of the model weights."
  value       = local.model_prefix
}

output "checkpoint_prefix" {
  description = "Key prefix of the training checkpoints."
  value       = local.checkpoint_prefix
}

output "read_policy_json" {
  description = "IAM policy document: list and read the model prefix (and decrypt with the customer key)."
  value       = data.aws_iam_policy_document.read.json
}

output "write_policy_json" {
  description = "IAM policy document: list, read, write and prune the checkpoint prefix (and encrypt with the customer key)."
  value       = data.aws_iam_policy_document.write.json
}

output "agent_prefix" {
  description = "Key prefix of the node agent bundles (the read policy lets nodes get objects under it)."
  value       = local.agent_prefix
}

output "agent_bundle" {
  description = "Where the nodes find the agent bundle: { bucket, key, sha256 } (pass it to aws-gpu-pool's agent_bundle), or null."
  value = var.agent_bundle == null ? null : {
    bucket = aws_s3_object.agent_bundle[0].bucket
    key    = aws_s3_object.agent_bundle[0].key
    sha256 = var.agent_bundle.sha256
  }
}
