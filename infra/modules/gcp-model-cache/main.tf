# The GCS bucket that holds model weights (models/) and training checkpoints (checkpoints/), and the
# pool service accounts' access to it.

locals {
  model_prefix      = "${var.key_prefix}models/"
  checkpoint_prefix = "${var.key_prefix}checkpoints/"
  agent_prefix      = "${var.key_prefix}agent/"
  object_path       = "projects/_/buckets/${var.bucket_name}/objects/"

  # IAM conditions (CEL). Listing is checked against the bucket itself, so the read grant also covers the
  # bucket resource: nodes can list names anywhere but read objects only under the three prefixes (models,
  # checkpoints, and the node agent bundles).
  read_condition = join(" || ", [
    "resource.type == \"storage.googleapis.com/Bucket\"",
    "resource.name.startsWith(\"${local.object_path}${local.model_prefix}\")",
    "resource.name.startsWith(\"${local.object_path}${local.checkpoint_prefix}\")",
    "resource.name.startsWith(\"${local.object_path}${local.agent_prefix}\")",
  ])
  write_condition = "resource.name.startsWith(\"${local.object_path}${local.checkpoint_prefix}\")"
}

data "google_storage_project_service_account" "this" {
  count   = var.kms_key_name == null ? 0 : 1
  project = var.project
}

# The Cloud Storage service agent encrypts objects with the customer key; without this grant writes fail.
resource "google_kms_crypto_key_iam_member" "storage_agent" {
  count         = var.kms_key_name == null ? 0 : 1
  crypto_key_id = var.kms_key_name
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${data.google_storage_project_service_account.this[0].email_address}"
}

resource "google_storage_bucket" "this" {
  project       = var.project
  name          = var.bucket_name
  location      = var.location
  storage_class = "STANDARD"
  force_destroy = var.force_destroy
  labels        = var.labels

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  versioning {
    enabled = true
  }

  dynamic "encryption" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      default_kms_key_name = encryption.value
    }
  }

  dynamic "logging" {
    for_each = var.access_log_bucket == null ? [] : [var.access_log_bucket]
    content {
      log_bucket        = logging.value
      log_object_prefix = "${var.bucket_name}/"
    }
  }

  # Replaced and deleted versions (a re-pushed model, a pruned checkpoint) are kept for a while, then removed.
  lifecycle_rule {
    condition {
      with_state                 = "ARCHIVED"
      days_since_noncurrent_time = var.noncurrent_version_days
    }
    action {
      type = "Delete"
    }
  }

  # Keep at most a few old versions of any object, whatever their age.
  lifecycle_rule {
    condition {
      with_state         = "ARCHIVED"
      num_newer_versions = 3
    }
    action {
      type = "Delete"
    }
  }

  # A node preempted mid-upload leaves an XML-API multipart upload behind; it is billed until aborted.
  lifecycle_rule {
    condition {
      age = var.abort_incomplete_multipart_days
    }
    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }

  depends_on = [google_kms_crypto_key_iam_member.storage_agent]
}

resource "google_storage_bucket_iam_member" "pool_read" {
  for_each = var.pool_service_accounts

  bucket = google_storage_bucket.this.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${each.value}"

  condition {
    title       = "pyctl-read-models-and-checkpoints"
    description = "List the bucket; read objects under ${local.model_prefix}, ${local.checkpoint_prefix} and ${local.agent_prefix}."
    expression  = local.read_condition
  }
}

resource "google_storage_bucket_iam_member" "pool_write_checkpoints" {
  for_each = var.pool_service_accounts

  bucket = google_storage_bucket.this.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${each.value}"

  condition {
    title       = "pyctl-write-checkpoints"
    description = "Create, overwrite and delete objects under ${local.checkpoint_prefix} only."
    expression  = local.write_condition
  }
}

# The node agent bundle: nodes install pyctl-agent from it (no public index, no Cloud NAT). The name is the
# bundle's sha256, so a new bundle is a new object; the startup script checks the hash again before
# installing. Encrypted like every object of the bucket: with its default KMS key when it has one.
resource "google_storage_bucket_object" "agent_bundle" {
  count = var.agent_bundle == null ? 0 : 1

  bucket       = google_storage_bucket.this.name
  name         = "${local.agent_prefix}${var.agent_bundle.sha256}.tar.gz"
  source       = var.agent_bundle.path
  content_type = "application/gzip"
  kms_key_name = var.kms_key_name
  metadata = {
    sha256 = var.agent_bundle.sha256
  }

  lifecycle {
    precondition {
      condition     = try(filesha256(var.agent_bundle.path), "") == var.agent_bundle.sha256
      error_message = "agent_bundle: ${var.agent_bundle.path} is missing or its sha256 is not agent_bundle.sha256; run `pyctl render`."
    }
  }
}
