# Internal module: the plumbing every pyctl Lambda needs around its code. An execution role that only
# Lambda in this account may assume, with the caller's code policy and a runtime policy (its own logs, its
# dead-letter queue, tracing, the customer key), the log group, the dead-letter queue, and the function
# (traced, with a dead-letter target, environment and concurrency from the caller).

data "aws_caller_identity" "current" {}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "this" {
  name               = var.role_name
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "code" {
  name   = var.code_policy_name
  role   = aws_iam_role.this.id
  policy = var.code_policy_json
}

data "aws_iam_policy_document" "runtime" {
  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }

  statement {
    sid       = "SendToDeadLetterQueue"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dead_letter.arn]
  }

  statement {
    sid     = "Tracing"
    actions = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    # X-Ray trace APIs do not support resource-level permissions.
    resources = ["*"]
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]

    content {
      sid       = "UseCustomerKey"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "runtime" {
  name   = var.runtime_policy_name
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.runtime.json
}

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_338:Operational logs; retention is the caller's var.log_retention_days (30 days by default), a year is the user's choice.
  #checkov:skip=CKV_AWS_158:The logs hold instance ids, utilization and events, no secrets; a customer key is used when var.kms_key_arn is set.
  name              = "/aws/lambda/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_sqs_queue" "dead_letter" {
  name                      = "${var.name}-dlq"
  message_retention_seconds = 1209600 # 14 days, the maximum: time to look at what failed
  kms_master_key_id         = var.kms_key_arn
  sqs_managed_sse_enabled   = var.kms_key_arn == null ? true : null
  tags                      = var.tags
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_117:pyctl functions call only AWS APIs (and the optional Slack webhook); a VPC would need NAT or endpoints and protects nothing.
  #checkov:skip=CKV_AWS_272:The zip is built deterministically by pyctl and pinned by source_code_hash; code signing is left to the user.
  #checkov:skip=CKV_AWS_173:The environment holds settings only (secrets stay in SSM); a customer key is used when var.kms_key_arn is set.
  function_name                  = var.name
  description                    = var.description
  role                           = aws_iam_role.this.arn
  runtime                        = var.runtime
  handler                        = var.handler
  filename                       = var.filename
  source_code_hash               = var.source_code_hash
  timeout                        = var.timeout_seconds
  memory_size                    = var.memory_size
  reserved_concurrent_executions = var.reserved_concurrency
  kms_key_arn                    = var.kms_key_arn

  environment {
    variables = var.environment
  }

  dead_letter_config {
    target_arn = aws_sqs_queue.dead_letter.arn
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.this.name
  }

  tags = var.tags

  depends_on = [aws_iam_role_policy.runtime]
}
