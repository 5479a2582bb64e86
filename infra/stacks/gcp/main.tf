# GCP half of an environment: the GCS model cache and the GPU pools (one gcp-gpu-pool per pool).
# An env without GCP pools does not call this stack, so it never needs Google credentials.

module "model_cache" {
  source = "../../modules/gcp-model-cache"
  count  = local.cache == null ? 0 : 1

  project                 = var.gcp.project
  bucket_name             = local.cache.bucket
  location                = local.cache.location
  kms_key_name            = local.cache.kms_key_name
  noncurrent_version_days = local.cache.noncurrent_version_days
  key_prefix              = local.cache.key_prefix
  access_log_bucket       = local.cache.access_log_bucket
  labels                  = merge(local.labels, { "pyctl-env" = var.env.name })
  agent_bundle = {
    path   = "${path.root}/${var.agent_bundle.path}"
    sha256 = var.agent_bundle.sha256
  }

  pool_service_accounts = { for name, pool in module.pool : name => pool.service_account_email }

  depends_on = [google_project_service.this] # services.tf: the APIs are on before the first create
}

module "pool" {
  source   = "../../modules/gcp-gpu-pool"
  for_each = local.pools

  name       = each.key
  env        = var.env.name
  project    = var.gcp.project
  region     = var.gcp.region
  network    = var.gcp.network
  subnetwork = var.gcp.subnetwork
  pool       = each.value
  labels     = local.labels

  # The bucket name comes from the variables (not the cache module), so the cache can grant the pools'
  # service accounts without a dependency cycle.
  model_cache = {
    bucket     = try(local.cache.bucket, "")
    key_prefix = try(local.cache.key_prefix, "")
  }
  model_version = each.value.model == null ? null : lookup(local.model_versions, each.value.model, null)
  nvme_path     = var.model_cache.nvme_path
  source_image  = var.source_image
  # The bundle object depends on the bucket only (not on the grants that name these pools): no cycle, and a
  # node never boots before its agent bundle is in the bucket.
  agent_bundle = try(module.model_cache[0].agent_bundle, null)

  depends_on = [google_project_service.this]
}
