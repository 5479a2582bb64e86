# Checkpoint-aware spot recovery: EventBridge sends EC2 interruption warnings, rebalance recommendations and
# state changes to a Lambda (pyctl's deterministic zip) that records them in DynamoDB and launches
# replacements for standalone job instances. Least-privilege IAM; failed deliveries land in an SQS DLQ.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account   = data.aws_caller_identity.current.account_id
  partition = data.aws_partition.current.partition
  region    = data.aws_region.current.region
  ec2_arn   = "arn:${local.partition}:ec2:${local.region}:${local.account}"

  # The key layout of pyctl.core.checkpoint: <prefix>/checkpoints/<job>/step-<N>/.
  prefix_clean      = trim(var.checkpoint_prefix, "/")
  checkpoint_prefix = "${local.prefix_clean == "" ? "" : "${local.prefix_clean}/"}checkpoints/"

  launch_template_arns    = sort(distinct([for job in var.jobs : "${local.ec2_arn}:launch-template/${job.launch_template_id}"]))
  job_subnet_arns         = sort(distinct(flatten([for job in var.jobs : [for s in job.subnet_ids : "${local.ec2_arn}:subnet/${s}"]])))
  job_security_group_arns = sort(distinct(flatten([for job in var.jobs : [for g in job.security_group_ids : "${local.ec2_arn}:security-group/${g}"]])))
  has_jobs                = length(var.jobs) > 0
  has_groups              = length(var.groups) > 0

  # Read by pyctl.clouds.aws.recovery.RecoveryConfig.from_environ.
  environment = {
    PYCTL_RECOVERY_TABLE = aws_dynamodb_table.this.name
    PYCTL_RECOVERY_CONFIG = jsonencode({
      env               = var.env
      policy            = var.policy
      jobs              = var.jobs
      groups            = { for pool, g in var.groups : g.name => { pool = pool, on_demand_percentage_above_base = g.on_demand_percentage_above_base } }
      checkpoint_bucket = var.checkpoint_bucket == null ? "" : var.checkpoint_bucket
      checkpoint_prefix = local.prefix_clean
    })
  }

  # Only the states after which an instance no longer trains reach the function. With fallback groups,
  # also their failed launches (no spot capacity -> on-demand) and the schedule that ends on-demand
  # periods (an on-demand group is not interrupted, so no event would come to end it).
  # Patterns are JSON strings so that every rule has the same type.
  all_event_rules = {
    notices = {
      pattern = jsonencode({
        source      = ["aws.ec2"]
        detail-type = ["EC2 Spot Instance Interruption Warning", "EC2 Instance Rebalance Recommendation"]
      })
      schedule    = null
      description = "EC2 notices"
    }
    state-change = {
      pattern = jsonencode({
        source      = ["aws.ec2"]
        detail-type = ["EC2 Instance State-change Notification"]
        detail      = { state = ["shutting-down", "terminated", "stopping", "stopped"] }
      })
      schedule    = null
      description = "EC2 state-change"
    }
    launch-unsuccessful = {
      pattern = jsonencode({
        source      = ["aws.autoscaling"]
        detail-type = ["EC2 Instance Launch Unsuccessful"]
        detail      = { AutoScalingGroupName = sort([for g in var.groups : g.name]) }
      })
      schedule    = null
      description = "spot pool launch failures"
    }
    fallback-schedule = {
      pattern     = null
      schedule    = var.fallback_schedule
      description = "spot pool groups back to spot after the cool-down"
    }
  }
  group_rules = ["launch-unsuccessful", "fallback-schedule"]
  event_rules = { for key, rule in local.all_event_rules : key => rule if local.has_groups || !contains(local.group_rules, key) }

  tags = merge(var.tags, { Component = "spot-recovery" })
}

# --- the interruption record --------------------------------------------------------------------------

resource "aws_dynamodb_table" "this" {
  name                        = var.name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  # Idempotency rows (EVENT#...) expire after a week.
  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  tags = local.tags
}

# --- dead-letter queue: failed EventBridge deliveries may send to it too ----------------------------------

data "aws_iam_policy_document" "dead_letter" {
  statement {
    sid       = "EventBridgeDeliveryFailures"
    actions   = ["sqs:SendMessage"]
    resources = [module.function.dead_letter_queue_arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [for rule in aws_cloudwatch_event_rule.this : rule.arn]
    }
  }
}

resource "aws_sqs_queue_policy" "dead_letter" {
  queue_url = module.function.dead_letter_queue_url
  policy    = data.aws_iam_policy_document.dead_letter.json
}

# --- IAM: what the code calls (pyctl.clouds.aws.recovery.IAM_ACTIONS; tests/recovery compare the two) ----

data "aws_iam_policy_document" "code" {
  statement {
    sid     = "DescribeInstancesAndSubnets"
    actions = ["ec2:DescribeInstances", "ec2:DescribeSubnets"]
    # Describe calls do not support resource-level permissions.
    resources = ["*"]
  }

  statement {
    sid       = "RecordInterruptions"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query"]
    resources = [aws_dynamodb_table.this.arn]
  }

  dynamic "statement" {
    for_each = local.has_groups ? [1] : []

    content {
      sid     = "DescribeGroups"
      actions = ["autoscaling:DescribeAutoScalingGroups"]
      # Describe calls do not support resource-level permissions.
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = local.has_groups ? [1] : []

    content {
      sid       = "ShiftOnlyTheEnvsSpotPoolGroups"
      actions   = ["autoscaling:UpdateAutoScalingGroup"]
      resources = sort([for g in var.groups : g.arn])

      # Both keys: the Auto Scaling docs name autoscaling:ResourceTag, the global key is aws:ResourceTag.
      condition {
        test     = "StringEquals"
        variable = "autoscaling:ResourceTag/pyctl:env"
        values   = [var.env]
      }

      condition {
        test     = "StringEquals"
        variable = "aws:ResourceTag/pyctl:env"
        values   = [var.env]
      }
    }
  }

  dynamic "statement" {
    for_each = local.has_jobs ? [1] : []

    content {
      sid       = "LaunchFromJobTemplates"
      actions   = ["ec2:RunInstances"]
      resources = local.launch_template_arns
    }
  }

  dynamic "statement" {
    for_each = local.has_jobs ? [1] : []

    content {
      sid       = "LaunchJobInstancesTagged"
      actions   = ["ec2:RunInstances"]
      resources = ["${local.ec2_arn}:instance/*"]

      condition {
        test     = "ArnEquals"
        variable = "ec2:LaunchTemplate"
        values   = local.launch_template_arns
      }

      condition {
        test     = "StringEquals"
        variable = "aws:RequestTag/pyctl:job"
        values   = sort(keys(var.jobs))
      }
    }
  }

  dynamic "statement" {
    for_each = local.has_jobs ? [1] : []

    content {
      sid     = "LaunchIntoJobSubnetsFromJobTemplates"
      actions = ["ec2:RunInstances"]
      # Security groups: only the jobs' own (the groups a replacement's network interface names).
      resources = concat(local.job_subnet_arns, local.job_security_group_arns, [
        "${local.ec2_arn}:volume/*",
        "${local.ec2_arn}:network-interface/*",
        "${local.ec2_arn}:key-pair/*",
        "${local.ec2_arn}:spot-instances-request/*",
        "arn:${local.partition}:ec2:${local.region}::image/*",
      ])

      condition {
        test     = "ArnEquals"
        variable = "ec2:LaunchTemplate"
        values   = local.launch_template_arns
      }
    }
  }

  dynamic "statement" {
    for_each = local.has_jobs ? [1] : []

    content {
      sid     = "TagAtLaunchOnly"
      actions = ["ec2:CreateTags"]
      resources = [
        "${local.ec2_arn}:instance/*",
        "${local.ec2_arn}:volume/*",
        "${local.ec2_arn}:network-interface/*",
        "${local.ec2_arn}:spot-instances-request/*",
      ]

      condition {
        test     = "StringEquals"
        variable = "ec2:CreateAction"
        values   = ["RunInstances"]
      }
    }
  }

  dynamic "statement" {
    for_each = local.has_jobs && length(var.instance_role_arns) > 0 ? [1] : []

    content {
      sid       = "PassOnlyTheJobInstanceRoles"
      actions   = ["iam:PassRole"]
      resources = var.instance_role_arns

      condition {
        test     = "StringEquals"
        variable = "iam:PassedToService"
        values   = ["ec2.amazonaws.com"]
      }
    }
  }

  dynamic "statement" {
    for_each = var.checkpoint_bucket == null ? [] : [var.checkpoint_bucket]

    content {
      sid       = "ListCheckpoints"
      actions   = ["s3:ListBucket"]
      resources = ["arn:${local.partition}:s3:::${statement.value}"]

      condition {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = ["${local.checkpoint_prefix}*"]
      }
    }
  }

  dynamic "statement" {
    for_each = var.checkpoint_bucket == null ? [] : [var.checkpoint_bucket]

    content {
      sid       = "ReadCheckpointManifests"
      actions   = ["s3:GetObject"]
      resources = ["arn:${local.partition}:s3:::${statement.value}/${local.checkpoint_prefix}*"]
    }
  }

  dynamic "statement" {
    for_each = var.checkpoint_bucket != null && var.checkpoint_kms_key_arn != null ? [var.checkpoint_kms_key_arn] : []

    content {
      sid       = "DecryptCheckpointManifests"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
    }
  }
}

# --- the function: role, runtime policy, log group, dead-letter queue (modules/_aws-function) -----------

module "function" {
  source = "../_aws-function"

  name                 = var.name
  role_name            = var.name
  description          = "pyctl spot recovery: record interruptions, launch replacements, on-demand fallback."
  filename             = var.lambda_filename
  source_code_hash     = var.lambda_source_code_hash
  handler              = "pyctl.functions.spot_recovery_aws.handler" # pyctl.package.FUNCTIONS["spot_recovery"]
  environment          = local.environment
  code_policy_name     = "recovery"
  code_policy_json     = data.aws_iam_policy_document.code.json
  runtime_policy_name  = "runtime"
  timeout_seconds      = 60
  reserved_concurrency = 10
  log_retention_days   = var.log_retention_days
  kms_key_arn          = var.kms_key_arn
  tags                 = local.tags
}

moved {
  from = aws_iam_role.this
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

# --- EventBridge ----------------------------------------------------------------------------------------

resource "aws_cloudwatch_event_rule" "this" {
  for_each = local.event_rules

  name                = "${var.name}-${each.key}"
  description         = "pyctl spot recovery: ${each.value.description}"
  event_pattern       = each.value.pattern
  schedule_expression = each.value.schedule
  tags                = local.tags

  lifecycle {
    precondition {
      condition     = length(var.groups) == 0 || var.env != ""
      error_message = "groups need env: the fallback may only change groups tagged pyctl:env = env."
    }
  }
}

resource "aws_cloudwatch_event_target" "this" {
  for_each = aws_cloudwatch_event_rule.this

  rule      = each.value.name
  target_id = "spot-recovery"
  arn       = module.function.function_arn

  retry_policy {
    maximum_event_age_in_seconds = 3600
    maximum_retry_attempts       = 10
  }

  dead_letter_config {
    arn = module.function.dead_letter_queue_arn
  }
}

resource "aws_lambda_permission" "events" {
  for_each = aws_cloudwatch_event_rule.this

  statement_id  = "events-${each.key}"
  action        = "lambda:InvokeFunction"
  function_name = module.function.function_name
  principal     = "events.amazonaws.com"
  source_arn    = each.value.arn
}
