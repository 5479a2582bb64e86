# The idle-GPU watchdog of this env (infra/modules/aws-gpu-watchdog), driven by env.yaml's `watchdog:`.
# `pyctl render` builds the function zip and writes var.function_packages["gpu_watchdog"]
# ({path relative to the env directory, base64sha256}).

module "gpu_watchdog" {
  source = "../../modules/aws-gpu-watchdog"
  count  = var.watchdog.enabled ? 1 : 0

  name             = "${var.env.name}-gpu-watchdog"
  env              = var.env.name # only this env's instances (tag pyctl:env), in the code and the IAM policy
  filename         = "${path.root}/${var.function_packages["gpu_watchdog"].path}"
  source_code_hash = var.function_packages["gpu_watchdog"].base64sha256

  schedule_expression = var.watchdog.schedule
  regions             = [var.aws.region]
  settings = {
    idle_minutes               = var.watchdog.idle_minutes
    threshold_percent          = var.watchdog.threshold_percent
    min_uptime_minutes         = var.watchdog.min_uptime_minutes
    missing_data               = var.watchdog.missing_data
    missing_data_grace_minutes = var.watchdog.missing_data_grace_minutes
    max_actions_per_run        = var.watchdog.max_actions_per_run
    dry_run                    = var.watchdog.dry_run
    protected_env              = var.env.protected
    act_in_protected_env       = var.watchdog.act_in_protected_env
    # Per pool instead: the pool module tags instances pyctl:spot-terminate from watchdog_may_terminate.
    terminate_one_time_spot = false
    warn_minutes            = var.watchdog.warn_minutes
    metric_namespace        = var.watchdog.metric_namespace
    metric_name             = var.watchdog.metric_name
  }
  # $/hour by type ("TYPE", "TYPE:spot") for the cost lines, rendered by pyctl from the price catalog
  # with the env's overrides; a type without a price shows none, never a made-up one.
  hourly_prices               = var.watchdog.hourly_prices
  notify_emails               = var.watchdog.notify_emails
  slack_webhook_ssm_parameter = var.watchdog.slack_webhook_ssm_parameter
  log_retention_days          = var.watchdog.log_retention_days

  tags = var.tags
}

output "gpu_watchdog" {
  description = "The watchdog function, its summary topic and its log group (null when disabled)."
  value = var.watchdog.enabled ? {
    function_name = module.gpu_watchdog[0].function_name
    sns_topic_arn = module.gpu_watchdog[0].sns_topic_arn
    log_group     = module.gpu_watchdog[0].log_group_name
  } : null
}
