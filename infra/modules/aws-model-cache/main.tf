# The model cache: one versioned, SSE-KMS encrypted, private S3 bucket. Models are read by every node of
# the env's pools; checkpoints are written by spot nodes and read back on resume.

data "aws_partition" "current" {}

locals {
  access_log_prefix = coalesce(var.access_log_prefix, "s3-access/${var.bucket_name}/")
  bucket_arn        = "arn:${data.aws_partition.current.partition}:s3:::${var.bucket_name}"
  # The same layout pyctl's model push, fetch-model and checkpoint agent use (pyctl/core/models.py, checkpoint.py).
  model_prefix      = "${var.key_prefix}models/"
  checkpoint_prefix = "${var.key_prefix}checkpoints/"
  agent_prefix      = "${var.key_prefix}agent/"
}

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_144:Cross-region replication doubles the storage bill of multi-GB weights; models are re-pushable and checkpoints are short-lived.
  #checkov:skip=CKV2_AWS_62:Nothing consumes object events; pyctl finds complete models and checkpoints by their manifests.
  #checkov:skip=CKV_AWS_18:Access logging is opt-in (var.access_log_bucket), configured by aws_s3_bucket_logging.this below.
  bucket        = var.bucket_name
  force_destroy = var.force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket                  = aws_s3_bucket.this.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    # One data key per bucket instead of one KMS call per object: model pushes upload thousands of parts.
    bucket_key_enabled = true

    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }

    expiration {
      expired_object_delete_marker = true
    }
  }

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_days
    }
  }

  # Versioning must be on before a noncurrent-version rule means anything.
  depends_on = [aws_s3_bucket_versioning.this]
}

resource "aws_s3_bucket_logging" "this" {
  count = var.access_log_bucket == null ? 0 : 1

  bucket        = aws_s3_bucket.this.id
  target_bucket = var.access_log_bucket
  target_prefix = local.access_log_prefix
}

data "aws_iam_policy_document" "bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      local.bucket_arn,
      "${local.bucket_arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid     = "DenyOutdatedTls"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      local.bucket_arn,
      "${local.bucket_arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
  policy = data.aws_iam_policy_document.bucket.json

  # A bucket policy put before the public access block can race it on create.
  depends_on = [aws_s3_bucket_public_access_block.this]
}

# What a GPU node may do with the cache, as policy documents the pools attach to their instance role.
data "aws_iam_policy_document" "read" {
  statement {
    sid       = "ListModels"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [local.model_prefix, "${local.model_prefix}*"]
    }
  }

  statement {
    sid       = "ReadModels"
    actions   = ["s3:GetObject"]
    resources = ["${local.bucket_arn}/${local.model_prefix}*"]
  }

  # The node agent bundle (content-addressed, so the bootstrap names the exact key; no listing needed).
  statement {
    sid       = "ReadAgentBundle"
    actions   = ["s3:GetObject"]
    resources = ["${local.bucket_arn}/${local.agent_prefix}*"]
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]

    content {
      sid       = "DecryptModels"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
    }
  }
}

data "aws_iam_policy_document" "write" {
  statement {
    sid       = "ListCheckpoints"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [local.checkpoint_prefix, "${local.checkpoint_prefix}*"]
    }
  }

  statement {
    sid = "ReadWriteCheckpoints"
    # GetObject: resume reads the newest checkpoint back; DeleteObject: the agent keeps the last N.
    actions = [
      "s3:AbortMultipartUpload",
      "s3:DeleteObject",
      "s3:GetObject",
      "s3:PutObject",
    ]
    resources = ["${local.bucket_arn}/${local.checkpoint_prefix}*"]
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]

    content {
      sid = "EncryptCheckpoints"
      # Multipart uploads under SSE-KMS need Decrypt as well as GenerateDataKey.
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

# The node agent bundle: nodes install pyctl-agent from it (no public index, no NAT). The key is the bundle's
# sha256, so a new bundle is a new object and a node never sees a half-replaced one; the boot script checks
# the hash again before installing. SSE-KMS like the bucket's default (the same key), SHA256-checked by S3.
resource "aws_s3_object" "agent_bundle" {
  count = var.agent_bundle == null ? 0 : 1

  bucket                 = aws_s3_bucket.this.bucket # known at plan time (id is computed)
  key                    = "${local.agent_prefix}${var.agent_bundle.sha256}.tar.gz"
  source                 = var.agent_bundle.path
  source_hash            = var.agent_bundle.sha256
  content_type           = "application/gzip"
  checksum_algorithm     = "SHA256"
  server_side_encryption = "aws:kms"
  kms_key_id             = var.kms_key_arn
  bucket_key_enabled     = true
  tags                   = var.tags # S3 allows 10 tags per object (default_tags included)

  lifecycle {
    precondition {
      condition     = try(filesha256(var.agent_bundle.path), "") == var.agent_bundle.sha256
      error_message = "agent_bundle: ${var.agent_bundle.path} is missing or its sha256 is not agent_bundle.sha256; run `pyctl render`."
    }
  }

  depends_on = [aws_s3_bucket_server_side_encryption_configuration.this, aws_s3_bucket_public_access_block.this]
}
