output "bucket" {
  description = "Name of the model-cache bucket."
  value       = google_storage_bucket.this.name
}

output "bucket_url" {
  description = "The bucket as a gs:// URL (pyctl-agent's --bucket on GCP nodes)."
  value       = google_storage_bucket.this.url
}

output "location" {
  description = "Location of the bucket."
  value       = google_storage_bucket.this.location
}

output "kms_key_name" {
  description = "The Cloud KMS key encrypting new objects, or null for Google-managed encryption."
  value       = var.kms_key_name
}

output "key_prefix" {
  description = "The prefix in front of models/ and checkpoints/ (pass it as --prefix to pyctl-agent)."
  value       = var.key_prefix
}

output "model_prefix" {
  description = "Object-name prefix of the model weights."
  value       = local.model_prefix
}

output "checkpoint_prefix" {
  description = "Object-name prefix of the training checkpoints."
  value       = local.checkpoint_prefix
}

output "read_condition" {
  description = "The IAM condition (CEL) of the pools' read grant (roles/storage.objectViewer), for review."
  value       = local.read_condition
}

output "write_condition" {
  description = "The IAM condition (CEL) of the pools' checkpoint grant (roles/storage.objectUser), for review."
  value       = local.write_condition
}

output "agent_prefix" {
  description = "Object prefix of the node agent bundles (the pools' read grant covers it)."
  value       = local.agent_prefix
}

output "agent_bundle" {
  description = "Where the nodes find the agent bundle: { bucket, key, sha256 } (pass it to gcp-gpu-pool's agent_bundle), or null."
  value = var.agent_bundle == null ? null : {
    bucket = google_storage_bucket_object.agent_bundle[0].bucket
    key    = google_storage_bucket_object.agent_bundle[0].name
    sha256 = var.agent_bundle.sha256
  }
}
