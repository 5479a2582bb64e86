output "gpu_capacity" {
  description = "GPU capacity per pool: cloud, capacity kind, instance type, GPU, GPUs per instance and instances (reserved: the reservation's size; otherwise the desired size). pyctl's plan summary diffs it."
  value       = { for name, pool in module.pool : name => pool.gpu_capacity }
}

output "model_cache_bucket" {
  description = "Name of the model-cache bucket (null when the env has no AWS model cache)."
  value       = try(local.cache.bucket, null)
}

output "model_cache" {
  description = "The model cache: bucket name and ARN, KMS key, key prefixes (null when the env has none)."
  value = local.cache == null ? null : {
    bucket            = local.cache.bucket
    bucket_arn        = local.cache.bucket_arn
    kms_key_arn       = local.cache.kms_key_arn
    key_prefix        = local.cache.key_prefix
    model_prefix      = local.cache.model_prefix
    checkpoint_prefix = local.cache.checkpoint_prefix
  }
}

output "pools" {
  description = "Per pool, what the watchdog and spot recovery act on: Auto Scaling group, launch template, node role, security group, capacity reservation and tags."
  value = { for name, pool in module.pool : name => {
    autoscaling_group_name  = pool.autoscaling_group_name
    autoscaling_group_arn   = pool.autoscaling_group_arn
    launch_template_id      = pool.launch_template_id
    launch_template_version = pool.launch_template_version
    role_arn                = pool.role_arn
    security_group_id       = pool.security_group_id
    capacity_reservation_id = pool.capacity_reservation_id
    tags                    = pool.tags
  } }
}
