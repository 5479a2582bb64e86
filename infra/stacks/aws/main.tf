# The AWS side of an env: the model-cache bucket and one GPU pool per entry of var.pools.
# watchdog.tf and recovery.tf (in this directory) add the idle-GPU watchdog and spot recovery.

data "aws_subnet" "selected" {
  for_each = toset(var.aws.subnet_ids)

  id = each.value
}

locals {
  # A model may be listed in several versions: a pool gets the last one listed.
  model_versions = { for m in var.model_cache.models : m.name => m.version... }

  # Each pool launches into the env's subnets that lie in its zones (all of them when it names none).
  pool_subnet_ids = { for name, pool in var.pools : name => [
    for id, subnet in data.aws_subnet.selected : id
    if length(pool.zones) == 0 || contains(pool.zones, subnet.availability_zone)
  ] }

  cache = var.model_cache.aws == null ? null : module.model_cache[0]
}

module "model_cache" {
  source = "../../modules/aws-model-cache"
  count  = var.model_cache.aws == null ? 0 : 1

  bucket_name             = var.model_cache.aws.bucket
  kms_key_arn             = var.model_cache.aws.kms_key_arn
  access_log_bucket       = var.model_cache.aws.access_log_bucket
  noncurrent_version_days = var.model_cache.aws.noncurrent_version_days
  tags                    = var.tags
  agent_bundle = {
    path   = "${path.root}/${var.agent_bundle.path}"
    sha256 = var.agent_bundle.sha256
  }
}

module "pool" {
  source   = "../../modules/aws-gpu-pool"
  for_each = var.pools

  name              = each.key
  env               = var.env.name
  capacity          = each.value.capacity
  instance_type     = each.value.instance_type
  instance_types    = each.value.instance_types
  gpu               = each.value.gpu
  gpus_per_instance = each.value.gpus_per_instance

  vpc_id            = var.aws.vpc_id
  subnet_ids        = local.pool_subnet_ids[each.key]
  availability_zone = each.value.capacity == "reserved" ? each.value.zones[0] : null

  min_size     = each.value.min_size
  desired_size = each.value.desired_size
  max_size     = each.value.max_size

  spot = each.value.spot
  reservation = each.value.reservation == null ? null : {
    instance_count = each.value.reservation.instance_count
    match          = each.value.reservation.match
    end_date       = each.value.reservation.end_date
  }
  capacity_block = try(each.value.reservation.capacity_block_offering_id, null) == null ? null : {
    offering_id = each.value.reservation.capacity_block_offering_id
  }

  root_volume_gb = each.value.root_volume_gb
  ingress        = each.value.ingress

  model_cache = {
    bucket            = local.cache.bucket
    key_prefix        = local.cache.key_prefix
    read_policy_json  = local.cache.read_policy_json
    write_policy_json = local.cache.write_policy_json
  }
  model = each.value.model == null ? null : {
    name    = each.value.model
    version = local.model_versions[each.value.model][length(local.model_versions[each.value.model]) - 1]
  }
  nvme_path    = var.model_cache.nvme_path
  agent_bundle = local.cache.agent_bundle
  boot_secrets = each.value.boot_secrets

  checkpoint_retention = var.spot_recovery.checkpoint_retention

  auto_shutdown          = each.value.auto_shutdown
  watchdog_may_terminate = each.value.watchdog_may_terminate
  tags                   = merge(var.tags, each.value.tags)
}
