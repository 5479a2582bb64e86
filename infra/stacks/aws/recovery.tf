# Checkpoint-aware spot recovery of this env (infra/modules/aws-spot-recovery), driven by env.yaml's
# `spot_recovery:`. `pyctl render` builds the function zip and writes var.function_packages["spot_recovery"]
# ({path relative to the env directory, base64sha256}). Spot pools are Auto Scaling groups: their
# interruptions are recorded and capacity rebalancing replaces the instances, and pools with
# `spot.fallback: on_demand` are shifted to on-demand (their group's OnDemandPercentageAboveBaseCapacity,
# which the pool module leaves to the fallback: ignore_changes) and back after the cool-down; standalone
# job instances listed in var.spot_recovery.jobs are replaced from their pool's launch template, in its subnets.

module "spot_recovery" {
  source = "../../modules/aws-spot-recovery"
  count  = var.spot_recovery.enabled ? 1 : 0

  # pyctl.clouds.aws.recovery.table_name(env) names the same table for `pyctl jobs status`.
  name                    = "pyctl-${var.env.name}-spot-recovery"
  env                     = var.env.name # the fallback changes only groups tagged pyctl:env = env (code and IAM)
  lambda_filename         = "${path.root}/${var.function_packages["spot_recovery"].path}"
  lambda_source_code_hash = var.function_packages["spot_recovery"].base64sha256

  policy = {
    max_interruptions = var.spot_recovery.max_interruptions
    window_hours      = var.spot_recovery.window_hours
    cooldown_hours    = var.spot_recovery.cooldown_hours
  }

  jobs = { for name, job in var.spot_recovery.jobs : name => {
    launch_template_id = module.pool[job.pool].launch_template_id
    instance_types     = var.pools[job.pool].instance_types
    subnet_ids         = local.pool_subnet_ids[job.pool]
    security_group_ids = [module.pool[job.pool].security_group_id]
  } }
  # Keyed by pool name (known at plan time); the group names are known after apply.
  groups = { for name, pool in var.pools : name => {
    name                            = module.pool[name].autoscaling_group_name
    arn                             = module.pool[name].autoscaling_group_arn
    on_demand_percentage_above_base = pool.spot.on_demand_percentage_above_base
  } if pool.capacity == "spot" && try(pool.spot.fallback, "none") == "on_demand" }
  instance_role_arns = sort(distinct([for job in var.spot_recovery.jobs : module.pool[job.pool].role_arn]))

  # Checkpoints live in the model-cache bucket under <key_prefix>checkpoints/<job>/.
  checkpoint_bucket      = try(local.cache.bucket, null)
  checkpoint_prefix      = try(local.cache.key_prefix, "")
  checkpoint_kms_key_arn = try(local.cache.kms_key_arn, null)

  deletion_protection = var.env.protected
  tags                = var.tags
}

output "spot_recovery" {
  description = "The recovery function, its interruption table and dead-letter queue (null when disabled)."
  value = var.spot_recovery.enabled ? {
    function_name         = module.spot_recovery[0].function_name
    table_name            = module.spot_recovery[0].table_name
    dead_letter_queue_url = module.spot_recovery[0].dead_letter_queue_url
  } : null
}
