# First-time setup of one GCP project: the APIs workload identity federation needs, an optional GCS bucket
# for Terraform state (versioned, uniform access, public access prevented; GCS serves HTTPS only), and the
# GitHub workload identity pool with a plan service account and one apply service account per env
# (github.tf). Applied once by hand, with local state that is then migrated (docs/setup.md).

locals {
  labels = merge(var.labels, { managed-by = "pyctl-bootstrap" })
}

resource "google_project_service" "needed" {
  for_each = toset([
    "cloudresourcemanager.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "sts.googleapis.com",
    "storage.googleapis.com",
  ])

  service            = each.value
  disable_on_destroy = false
}

resource "google_storage_bucket" "state" {
  #checkov:skip=CKV_GCP_62:Access logs need a second bucket before the first exists; Cloud Audit Logs record data access to state.
  count = var.state_bucket == null ? 0 : 1

  name                        = var.state_bucket
  location                    = var.state_location
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = local.labels

  versioning {
    enabled = true
  }

  # Keep the 10 newest overwritten state versions, none older than 90 days.
  lifecycle_rule {
    condition {
      num_newer_versions = 10
      with_state         = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 90
    }
    action {
      type = "Delete"
    }
  }

  dynamic "encryption" {
    for_each = var.state_kms_key_name == null ? [] : [var.state_kms_key_name]
    content {
      default_kms_key_name = encryption.value
    }
  }

  lifecycle {
    prevent_destroy = true
  }

  depends_on = [google_project_service.needed]
}
