# The idle-GPU watchdog: a scheduled Lambda that stops (or terminates, or scales in) GPU instances whose
# every GPU stayed idle, with least-privilege IAM. The code is pyctl's deterministic zip.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account   = data.aws_caller_identity.current.account_id
  partition = data.aws_partition.current.partition
  region    = data.aws_region.current.region
  regions   = length(var.regions) > 0 ? var.regions : [local.region]

  # Tag that opts an instance (and its Auto Scaling group) in; the mutating IAM actions are limited to it.
  opt_in_tag = "AutoShutdown"
  # The env tag aws-gpu-pool writes on instances and groups (pyctl.core.idle.ENV_SCOPE_TAG): the function
  # lists only var.env's instances and its mutating IAM actions need the same tag value.
  env_tag    = "pyctl:env"
  acted_tag  = "pyctl:watchdog-acted"
  warned_tag = "pyctl:watchdog-warned"

  slack_parameter_arn = var.slack_webhook_ssm_parameter == null ? null : "arn:${local.partition}:ssm:${local.region}:${local.account}:parameter${var.slack_webhook_ssm_parameter}"

  # Read by pyctl.core.idle.Settings.from_environ and pyctl/functions/gpu_watchdog_aws.py.
  environment = merge(
    {
      WATCHDOG_REGIONS                    = join(",", local.regions)
      WATCHDOG_ENV                        = var.env
      WATCHDOG_IDLE_MINUTES               = tostring(var.settings.idle_minutes)
      WATCHDOG_THRESHOLD_PERCENT          = tostring(var.settings.threshold_percent)
      WATCHDOG_MIN_UPTIME_MINUTES         = tostring(var.settings.min_uptime_minutes)
      WATCHDOG_MISSING_DATA               = var.settings.missing_data
      WATCHDOG_MISSING_DATA_GRACE_MINUTES = tostring(var.settings.missing_data_grace_minutes)
      WATCHDOG_MAX_ACTIONS_PER_RUN        = tostring(var.settings.max_actions_per_run)
      WATCHDOG_DRY_RUN                    = tostring(var.settings.dry_run)
      WATCHDOG_PROTECTED_ENV              = tostring(var.settings.protected_env)
      WATCHDOG_ACT_IN_PROTECTED_ENV       = tostring(var.settings.act_in_protected_env)
      WATCHDOG_TERMINATE_ONE_TIME_SPOT    = tostring(var.settings.terminate_one_time_spot)
      WATCHDOG_WARN_MINUTES               = tostring(var.settings.warn_minutes)
      WATCHDOG_METRIC_NAMESPACE           = var.settings.metric_namespace
      WATCHDOG_METRIC_NAME                = var.settings.metric_name
      WATCHDOG_SNS_TOPIC_ARN              = aws_sns_topic.summary.arn
      WATCHDOG_HOURLY_PRICES              = jsonencode(var.hourly_prices)
    },
    var.slack_webhook_ssm_parameter == null ? {} : { WATCHDOG_SLACK_WEBHOOK_PARAMETER = var.slack_webhook_ssm_parameter },
  )

  tags = merge(var.tags, { Component = "gpu-watchdog" })
}

# --- what the code calls (pyctl.clouds.aws.watchdog.iam_permissions(); tests/watchdog compare the two) ---

data "aws_iam_policy_document" "code" {
  statement {
    sid = "ReadFleetAndMetrics"
    actions = [
      "ec2:DescribeInstances",
      "ec2:DescribeInstanceTypes",
      "ec2:DescribeSpotInstanceRequests",
      "autoscaling:DescribeAutoScalingGroups",
      "cloudwatch:ListMetrics",
      "cloudwatch:GetMetricData",
    ]
    # These read APIs do not support resource-level permissions.
    resources = ["*"]
  }

  statement {
    sid       = "StopOrTerminateOptedInInstancesOfEnv"
    actions   = ["ec2:StopInstances", "ec2:TerminateInstances"]
    resources = ["arn:${local.partition}:ec2:*:${local.account}:instance/*"]

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/${local.opt_in_tag}"
      values   = ["true"]
    }

    # EC2 instance ARNs: aws:ResourceTag/${TagKey} (Service Authorization Reference, Amazon EC2,
    # https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html).
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/${local.env_tag}"
      values   = [var.env]
    }
  }

  statement {
    sid       = "ScaleInOptedInGroupsOfEnv"
    actions   = ["autoscaling:TerminateInstanceInAutoScalingGroup"]
    resources = ["arn:${local.partition}:autoscaling:*:${local.account}:autoScalingGroup:*:autoScalingGroupName/*"]

    # Auto Scaling groups: the Service Authorization Reference lists both aws:ResourceTag/${TagKey} and
    # autoscaling:ResourceTag/${TagKey} for autoScalingGroup; the Auto Scaling guide ("Tags for security",
    # https://docs.aws.amazon.com/autoscaling/ec2/userguide/tag-security.html) uses the latter. Both must
    # hold: the group opted in, of this env.
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/${local.opt_in_tag}"
      values   = ["true"]
    }

    condition {
      test     = "StringEquals"
      variable = "autoscaling:ResourceTag/${local.opt_in_tag}"
      values   = ["true"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/${local.env_tag}"
      values   = [var.env]
    }

    condition {
      test     = "StringEquals"
      variable = "autoscaling:ResourceTag/${local.env_tag}"
      values   = [var.env]
    }
  }

  statement {
    sid       = "MarkActedOnOptedInInstancesOfEnv"
    actions   = ["ec2:CreateTags"]
    resources = ["arn:${local.partition}:ec2:*:${local.account}:instance/*"]

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/${local.opt_in_tag}"
      values   = ["true"]
    }

    # EC2 instance ARNs: aws:ResourceTag/${TagKey} (Service Authorization Reference, Amazon EC2,
    # https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html).
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/${local.env_tag}"
      values   = [var.env]
    }

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "aws:TagKeys"
      values   = [local.acted_tag, local.warned_tag]
    }
  }

  statement {
    sid       = "PublishSummary"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.summary.arn]
  }

  dynamic "statement" {
    for_each = local.slack_parameter_arn == null ? [] : [local.slack_parameter_arn]

    content {
      sid       = "ReadSlackWebhookParameter"
      actions   = ["ssm:GetParameter"]
      resources = [statement.value]
    }
  }
}

# Encrypting with a customer key (SNS publish, SQS send): the scheduler role needs it; empty without one.
data "aws_iam_policy_document" "customer_key" {
  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]

    content {
      sid       = "UseCustomerKey"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

# --- the function: role, runtime policy, log group, dead-letter queue (modules/_aws-function) ---

module "function" {
  source = "../_aws-function"

  name               = var.name
  role_name          = "${var.name}-function"
  description        = "pyctl idle-GPU watchdog: stops GPU instances whose every GPU stayed idle."
  filename           = var.filename
  source_code_hash   = var.source_code_hash
  handler            = "pyctl.functions.gpu_watchdog_aws.handler" # pyctl.package.FUNCTIONS["gpu_watchdog"]
  environment        = local.environment
  code_policy_name   = "watchdog-code"
  code_policy_json   = data.aws_iam_policy_document.code.json
  timeout_seconds    = var.timeout_seconds
  memory_size        = var.memory_size
  log_retention_days = var.log_retention_days
  kms_key_arn        = var.kms_key_arn
  tags               = local.tags

  # One run at a time: two overlapping runs could otherwise act on the same window twice.
  reserved_concurrency = 1
}

moved {
  from = aws_iam_role.function
  to   = module.function.aws_iam_role.this
}

moved {
  from = aws_iam_role_policy.code
  to   = module.function.aws_iam_role_policy.code
}

moved {
  from = aws_iam_role_policy.runtime
  to   = module.function.aws_iam_role_policy.runtime
}

moved {
  from = aws_cloudwatch_log_group.this
  to   = module.function.aws_cloudwatch_log_group.this
}

moved {
  from = aws_sqs_queue.dead_letter
  to   = module.function.aws_sqs_queue.dead_letter
}

moved {
  from = aws_lambda_function.this
  to   = module.function.aws_lambda_function.this
}

resource "aws_sns_topic" "summary" {
  name              = "${var.name}-summary"
  kms_master_key_id = coalesce(var.kms_key_arn, "alias/aws/sns")
  tags              = local.tags
}

resource "aws_sns_topic_subscription" "email" {
  for_each = toset(var.notify_emails)

  topic_arn = aws_sns_topic.summary.arn
  protocol  = "email"
  endpoint  = each.value
}

# --- the schedule ---

data "aws_iam_policy_document" "assume_scheduler" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

data "aws_iam_policy_document" "scheduler" {
  source_policy_documents = [data.aws_iam_policy_document.customer_key.json]

  statement {
    sid       = "InvokeWatchdog"
    actions   = ["lambda:InvokeFunction"]
    resources = [module.function.function_arn]
  }

  statement {
    sid       = "SendToDeadLetterQueue"
    actions   = ["sqs:SendMessage"]
    resources = [module.function.dead_letter_queue_arn]
  }
}

resource "aws_iam_role" "scheduler" {
  name               = "${var.name}-scheduler"
  assume_role_policy = data.aws_iam_policy_document.assume_scheduler.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "invoke-watchdog"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler.json
}

resource "aws_scheduler_schedule" "this" {
  #checkov:skip=CKV_AWS_297:The schedule's input is a constant marker, no data; a customer key is used when var.kms_key_arn is set.
  name                = var.name
  description         = "Runs the pyctl idle-GPU watchdog."
  schedule_expression = var.schedule_expression
  kms_key_arn         = var.kms_key_arn

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = module.function.function_arn
    role_arn = aws_iam_role.scheduler.arn
    input    = jsonencode({ source = "pyctl.gpu-watchdog.schedule" })

    retry_policy {
      # A missed run is covered by the next one; each run reads the whole window again.
      maximum_retry_attempts = 1
    }

    dead_letter_config {
      arn = module.function.dead_letter_queue_arn
    }
  }
}
