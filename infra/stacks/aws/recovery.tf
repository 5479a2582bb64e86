# Checkpoint-aware spot recovery of this env (infra/modules/aws-spot-recovery), driven by env.yaml's
# `spot_recovery:`. `pyctl render` builds the function zip and writes var.function_packages["spot_recovery"]
# ({path relative to the env directory, base64sha256}). Spot pools are Auto Scaling groups: their
# interruptions are recorded and capacity rebalancing replaces the instances; standalone job instances
# listed in var.spot_recovery_jobs are replaced from their launch templates.

# Not in variables.tf yet (the lead owns it): standalone jobs are not part of env.yaml so far.
variable "spot_recovery_jobs" {
  description = "Standalone spot job instances to replace, keyed by job name (tag pyctl:job): launch template, instance types, subnets, and the instance role the template passes."
  type = map(object({
    launch_template_id = string
    instance_types     = optional(list(string), [])
    subnet_ids         = list(string)
    instance_role_arn  = optional(string)
  }))
  default = {}
}

module "spot_recovery" {
  source = "../../modules/aws-spot-recovery"
  count  = var.spot_recovery.enabled ? 1 : 0

  # pyctl.clouds.aws.recovery.table_name(env) names the same table for `pyctl jobs status`.
  name                    = "pyctl-${var.env.name}-spot-recovery"
  lambda_filename         = "${path.root}/${var.function_packages["spot_recovery"].path}"
  lambda_source_code_hash = var.function_packages["spot_recovery"].base64sha256

  policy = {
    max_interruptions = var.spot_recovery.max_interruptions
    window_hours      = var.spot_recovery.window_hours
    cooldown_hours    = var.spot_recovery.cooldown_hours
  }

  jobs = { for name, job in var.spot_recovery_jobs : name => {
    launch_template_id = job.launch_template_id
    instance_types     = job.instance_types
    subnet_ids         = job.subnet_ids
  } }
  instance_role_arns = sort(distinct(compact([for job in var.spot_recovery_jobs : job.instance_role_arn])))

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
