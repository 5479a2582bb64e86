# First-time setup of one AWS account: the bucket that holds the envs' Terraform state (versioned, KMS
# encrypted, TLS only, never public) and the GitHub OIDC roles CI uses (github.tf). Applied once by hand,
# with local state that is then migrated into the bucket (docs/setup.md).

locals {
  tags = merge(var.tags, { ManagedBy = "pyctl-bootstrap" })
  # IAM ARNs are built from the account and partition the provider is pinned to.
  account_arn = "arn:aws:iam::${var.account_id}:root"
}

resource "aws_kms_key" "state" {
  description             = "Terraform state of the pyctl envs in this account (${var.state_bucket})"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  tags                    = local.tags
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      # The account administers the key; the CI roles get kms:* actions only through their IAM policies.
      Sid       = "AccountAdministersTheKeyAndDelegatesUseToIAM"
      Effect    = "Allow"
      Principal = { AWS = local.account_arn }
      Action    = "kms:*"
      Resource  = "*"
    }]
  })
}

resource "aws_kms_alias" "state" {
  name          = "alias/${var.state_bucket}"
  target_key_id = aws_kms_key.state.key_id
}

resource "aws_s3_bucket" "state" {
  #checkov:skip=CKV_AWS_144:State is small and versioned in one region; replicating it doubles the recovery paths to secure for no gain here.
  #checkov:skip=CKV2_AWS_62:Nothing consumes state object events; Terraform reads the state itself.
  #checkov:skip=CKV_AWS_18:Server access logs need a second bucket before the first exists; CloudTrail data events are the audit trail for state reads.
  bucket = var.state_bucket
  tags   = local.tags

  lifecycle {
    prevent_destroy = true
  }
}

resource "aws_s3_bucket_ownership_controls" "state" {
  bucket = aws_s3_bucket.state.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "state" {
  bucket                  = aws_s3_bucket.state.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "state" {
  bucket = aws_s3_bucket.state.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "state" {
  bucket = aws_s3_bucket.state.id

  rule {
    bucket_key_enabled = true

    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.state.arn
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "state" {
  bucket = aws_s3_bucket.state.id

  rule {
    id     = "expire-old-state-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_state_days
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.state]
}

resource "aws_s3_bucket_policy" "state" {
  bucket = aws_s3_bucket.state.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "DenyInsecureTransport"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [aws_s3_bucket.state.arn, "${aws_s3_bucket.state.arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })

  depends_on = [aws_s3_bucket_public_access_block.state]
}
