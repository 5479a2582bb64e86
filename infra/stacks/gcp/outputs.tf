output "gpu_capacity" {
  description = "GPU capacity per pool: {cloud = \"gcp\", capacity, instance_type (machine type), gpu, gpus_per_instance, instances} (read by pyctl's plan summary)."
  value       = { for name, pool in module.pool : name => pool.gpu_capacity }

  precondition {
    condition     = length(var.pools) == 0 || var.model_cache.gcp != null
    error_message = "GCP pools need model_cache.gcp (a GCS bucket) in env.yaml: nodes fetch models from it and upload checkpoints to it."
  }
}

output "model_cache_bucket" {
  description = "Name of the GCS model-cache bucket (null when the env has no GCP model cache)."
  value       = try(local.cache.bucket, null)
}

output "model_cache" {
  description = "The GCS model cache: bucket name and URL, location, KMS key, key prefixes (null when the env has none)."
  value = local.cache == null ? null : {
    bucket            = module.model_cache[0].bucket
    bucket_url        = module.model_cache[0].bucket_url
    location          = module.model_cache[0].location
    kms_key_name      = module.model_cache[0].kms_key_name
    key_prefix        = module.model_cache[0].key_prefix
    model_prefix      = module.model_cache[0].model_prefix
    checkpoint_prefix = module.model_cache[0].checkpoint_prefix
  }
}

output "pools" {
  description = "Per pool: managed instance group, service account, reservation (reserved pools) and labels."
  value = {
    for name, pool in module.pool : name => {
      instance_group_manager = pool.instance_group_manager
      service_account_email  = pool.service_account_email
      reservation            = pool.reservation
      labels                 = pool.labels
    }
  }
}
