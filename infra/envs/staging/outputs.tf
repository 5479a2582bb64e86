# Rendered by `pyctl render --env staging`.

output "gpu_capacity" {
  description = "GPU capacity per pool: cloud, capacity kind, type, GPUs per instance and instance count (read by pyctl's plan summary)."
  value       = merge(module.aws.gpu_capacity, module.gcp.gpu_capacity)
}

output "model_cache" {
  description = "Where models and checkpoints live, per cloud."
  value = {
    aws = module.aws.model_cache_bucket
    gcp = module.gcp.model_cache_bucket
  }
}
