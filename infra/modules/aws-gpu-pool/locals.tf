# Locals computed from the inputs alone (no data source, no resource): names, the merged tags, the
# security group rules, and the node bootstrap. Tests evaluate this file with Terraform core offline
# (tests/terraform/test_pool_locals.py); locals that need AWS are in main.tf.

locals {
  name    = "${var.env}-${var.name}"
  is_spot = var.capacity == "spot"
  job     = coalesce(var.spot_job, var.name)

  reserved       = var.capacity == "reserved"
  capacity_block = local.reserved && var.capacity_block != null

  # Merged once, applied to every resource, the instances and their volumes. The watchdog and spot
  # recovery read AutoShutdown and the pyctl:* keys (see README.md, "Tags").
  tags = merge(
    var.tags,
    var.cost_center == null ? {} : { CostCenter = var.cost_center },
    {
      Name                   = local.name
      Env                    = var.env
      Pool                   = var.name
      CapacityKind           = var.capacity
      AutoShutdown           = var.auto_shutdown ? "true" : "false"
      "pyctl:env"            = var.env
      "pyctl:pool"           = var.name
      "pyctl:capacity"       = var.capacity
      "pyctl:gpu"            = var.gpu
      "pyctl:spot-terminate" = var.watchdog_may_terminate ? "true" : "false"
    },
    local.is_spot ? {
      "pyctl:job"           = local.job
      "pyctl:spot-fallback" = var.spot.fallback
    } : {},
  )

  secrets = [for s in var.boot_secrets : {
    env_var = s.env_var
    source  = s.ssm_parameter != null ? "ssm" : "secretsmanager"
    name    = coalesce(s.ssm_parameter, s.secrets_manager_secret)
  }]

  user_data = templatefile("${path.module}/templates/bootstrap.sh.tftpl", {
    env                  = var.env
    pool                 = var.name
    capacity             = var.capacity
    region               = local.region
    bucket               = var.model_cache.bucket
    key_prefix           = var.model_cache.key_prefix
    model_name           = var.model == null ? "" : var.model.name
    model_version        = var.model == null ? "" : var.model.version
    nvme_path            = var.nvme_path
    agent_bundle_bucket  = var.agent_bundle.bucket
    agent_bundle_key     = var.agent_bundle.key
    agent_bundle_sha256  = var.agent_bundle.sha256
    spot_watch           = local.is_spot
    checkpoint_keep      = var.checkpoint_retention
    secrets              = local.secrets
    cloudwatch_namespace = var.cloudwatch_namespace
    metrics_interval     = var.metrics_interval_seconds
  })

  # One rule per source and port; "intra-pool" lets the pool's nodes talk to each other on any port (NCCL).
  intra_pool = var.allow_intra_pool ? { "intra-pool" = { cidr = null, security_group = "self", port = null } } : {}
  ingress_rules = merge(
    { for pair in setproduct(var.ingress.cidrs, var.ingress.ports) : "${pair[0]}:${pair[1]}" => {
      cidr = pair[0], security_group = null, port = pair[1]
    } },
    { for pair in setproduct(var.ingress.security_group_ids, var.ingress.ports) : "${pair[0]}:${pair[1]}" => {
      cidr = null, security_group = pair[0], port = pair[1]
    } },
    local.intra_pool,
  )
  egress_rules = merge(
    { for pair in setproduct(var.egress.cidrs, var.egress.ports) : "${pair[0]}:${pair[1]}" => {
      cidr = pair[0], security_group = null, port = pair[1]
    } },
    local.intra_pool,
  )
}
