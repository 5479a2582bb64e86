# The idle-GPU watchdog on GCP: a Cloud Function (gen2) built from pyctl's deterministic source zip, called
# over HTTP by Cloud Scheduler with an OIDC token, running as its own service account whose custom roles
# grant exactly the permissions the code calls (pyctl/clouds/gcp: compute.iam_permissions(),
# monitoring.METRIC_PERMISSIONS, recovery.RECOVERY_PERMISSIONS; a test keeps them equal).

locals {
  # Service account ids are 6-30 characters: a readable head and a hash of the full name.
  account_head = replace(substr(var.name, 0, 21), "/-+$/", "")
  runtime_id   = "${local.account_head}-${substr(sha1("${var.name}/runtime"), 0, 6)}"
  invoker_id   = "${local.account_head}-${substr(sha1("${var.name}/invoker"), 0, 6)}"
  role_prefix  = replace("pyctl_${var.name}", "-", "_")

  # Read anywhere in the project (listing, groups, operations, GPU metrics).
  read_permissions = concat(
    [
      "compute.autoscalers.get",
      "compute.instanceGroupManagers.get",
      "compute.instances.list",
      "compute.regionOperations.get",
      "compute.zoneOperations.get",
      "monitoring.timeSeries.list",
    ],
    var.recover_spot ? ["compute.zoneOperations.list"] : [],
  )
  # Act only on VMs and groups named with act_on_name_prefix (the code acts only on labelled VMs too).
  # IAM Conditions on Compute Engine see resource.service, resource.type, resource.name and Resource Manager
  # tags, not labels (https://cloud.google.com/iam/docs/conditions-attribute-reference): the env's label
  # cannot be a condition, the env's name prefix (pyctl-<env>-, set by the stacks) is.
  act_permissions = concat(
    [
      "compute.instanceGroupManagers.update",
      "compute.instances.delete",
      "compute.instances.stop",
    ],
    var.recover_spot ? ["compute.instances.start"] : [],
  )
  act_condition = var.act_on_name_prefix == null ? [] : [
    "resource.name.extract(\"/instances/{name}\").startsWith(\"${var.act_on_name_prefix}\") || resource.name.extract(\"/instanceGroupManagers/{name}\").startsWith(\"${var.act_on_name_prefix}\")"
  ]

  # Settings -> the environment the function reads (pyctl.core.idle.ENVIRONMENT and pyctl/functions/gpu_watchdog_gcp.py).
  environment = {
    WATCHDOG_PROJECT                    = var.project
    WATCHDOG_ENV                        = var.env
    WATCHDOG_ZONES                      = join(",", var.zones)
    WATCHDOG_HOURLY_PRICES              = jsonencode(var.hourly_prices)
    WATCHDOG_RECOVER_SPOT               = tostring(var.recover_spot)
    WATCHDOG_IDLE_MINUTES               = tostring(var.settings.idle_minutes)
    WATCHDOG_THRESHOLD_PERCENT          = tostring(var.settings.threshold_percent)
    WATCHDOG_MIN_UPTIME_MINUTES         = tostring(var.settings.min_uptime_minutes)
    WATCHDOG_MISSING_DATA               = var.settings.missing_data
    WATCHDOG_MISSING_DATA_GRACE_MINUTES = tostring(var.settings.missing_data_grace_minutes)
    WATCHDOG_MAX_ACTIONS_PER_RUN        = tostring(var.settings.max_actions_per_run)
    WATCHDOG_DRY_RUN                    = tostring(var.settings.dry_run)
    WATCHDOG_PROTECTED_ENV              = tostring(var.settings.protected_env)
    WATCHDOG_ACT_IN_PROTECTED_ENV       = tostring(var.settings.act_in_protected_env)
    # The spot fallback pass (pyctl.clouds.gcp.recovery.FallbackConfig); empty: no fallback.
    WATCHDOG_FALLBACK = var.fallback == null ? "" : jsonencode({
      groups            = var.fallback.groups
      max_interruptions = var.fallback.max_interruptions
      window_hours      = var.fallback.window_hours
      cooldown_hours    = var.fallback.cooldown_hours
      state_bucket      = var.fallback.state_bucket
      state_prefix      = var.fallback.state_prefix
    })
  }

  labels = merge(var.labels, { "pyctl-component" = "gpu-watchdog" })
  # A new zip is a new object name: the function is rebuilt exactly when the code changes.
  object_name = "${var.source_prefix}${var.name}-${substr(sha256(var.source_code_hash), 0, 16)}.zip"
}

resource "google_service_account" "runtime" {
  project      = var.project
  account_id   = local.runtime_id
  display_name = "pyctl ${var.name} (function runtime)"
  description  = "Identity of the ${var.name} function: reads GPU metrics, stops idle labelled GPU VMs, shrinks their groups."
}

resource "google_service_account" "invoker" {
  project      = var.project
  account_id   = local.invoker_id
  display_name = "pyctl ${var.name} (scheduler invoker)"
  description  = "Cloud Scheduler calls the ${var.name} function with an OIDC token of this account; it can do nothing else."
}

resource "google_project_iam_custom_role" "read" {
  project     = var.project
  role_id     = "${local.role_prefix}_read"
  title       = "pyctl ${var.name}: read"
  description = "List GPU VMs, their instance groups, autoscalers and operations, and read GPU utilization."
  permissions = local.read_permissions
}

resource "google_project_iam_custom_role" "act" {
  project     = var.project
  role_id     = "${local.role_prefix}_act"
  title       = "pyctl ${var.name}: act"
  description = "Stop idle GPU VMs, remove idle members from instance groups, start preempted Spot VMs."
  permissions = local.act_permissions
}

resource "google_project_iam_member" "read" {
  project = var.project
  role    = google_project_iam_custom_role.read.id
  member  = google_service_account.runtime.member
}

resource "google_project_iam_member" "act" {
  project = var.project
  role    = google_project_iam_custom_role.act.id
  member  = google_service_account.runtime.member

  dynamic "condition" {
    for_each = local.act_condition
    content {
      title       = "pyctl-named-resources-only"
      description = "Only VMs and instance groups whose names start with ${var.act_on_name_prefix}."
      expression  = condition.value
    }
  }
}

# The spot fallback's state: read and (over)write with generation preconditions one JSON object per pool,
# under the state prefix of the env's bucket only (pyctl.clouds.gcp.recovery.STATE_PERMISSIONS). The bucket
# has uniform bucket-level access, which IAM Conditions on a bucket binding need.
resource "google_project_iam_custom_role" "fallback_state" {
  count = var.fallback == null ? 0 : 1

  project     = var.project
  role_id     = "${local.role_prefix}_fallback_state"
  title       = "pyctl ${var.name}: spot fallback state"
  description = "Read and write the spot fallback's state objects."
  permissions = ["storage.objects.create", "storage.objects.delete", "storage.objects.get"]
}

resource "google_storage_bucket_iam_member" "fallback_state" {
  count = var.fallback == null ? 0 : 1

  bucket = var.fallback.state_bucket
  role   = google_project_iam_custom_role.fallback_state[0].id
  member = google_service_account.runtime.member

  condition {
    title       = "pyctl-fallback-state-only"
    description = "Only the objects under ${var.fallback.state_prefix}fallback/."
    expression  = "resource.name.startsWith(\"projects/_/buckets/${var.fallback.state_bucket}/objects/${var.fallback.state_prefix}fallback/\")"
  }
}

resource "google_storage_bucket_object" "source" {
  bucket       = var.source_bucket
  name         = local.object_name
  source       = var.filename
  content_type = "application/zip"
}

resource "google_cloudfunctions2_function" "watchdog" {
  project     = var.project
  location    = var.region
  name        = var.name
  description = "pyctl idle-GPU watchdog: stops idle GPU VMs labelled auto-shutdown=true, shrinks their groups, restarts preempted Spot VMs."
  labels      = local.labels

  build_config {
    runtime     = "python312"
    entry_point = "watchdog_http"

    source {
      storage_source {
        bucket = google_storage_bucket_object.source.bucket
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    # One run at a time: two concurrent runs could both shrink the same group.
    max_instance_count               = 1
    max_instance_request_concurrency = 1
    min_instance_count               = 0
    available_memory                 = var.memory
    # Waits for operations: at most 240 s for the watchdog's, 180 s for the recovery pass's.
    timeout_seconds = var.timeout_seconds
    # Cloud Scheduler requests count as internal traffic; nothing else needs to reach the function.
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.runtime.email
    environment_variables          = local.environment
  }
}

# Gen2 functions are Cloud Run services: the invoker needs run.invoker on that service only.
resource "google_cloud_run_v2_service_iam_member" "invoker" {
  project  = var.project
  location = var.region
  name     = google_cloudfunctions2_function.watchdog.service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.invoker.member
}

resource "google_cloud_scheduler_job" "watchdog" {
  project          = var.project
  region           = var.region
  name             = var.name
  description      = "Runs the ${var.name} function."
  schedule         = var.schedule
  time_zone        = var.time_zone
  attempt_deadline = "600s"

  # The next scheduled run is the retry: a failed run is not repeated at once.
  retry_config {
    retry_count = 0
  }

  http_target {
    uri         = google_cloudfunctions2_function.watchdog.service_config[0].uri
    http_method = "POST"
    headers     = { "Content-Type" = "application/json" }
    body        = base64encode("{}")

    oidc_token {
      service_account_email = google_service_account.invoker.email
      audience              = google_cloudfunctions2_function.watchdog.service_config[0].uri
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.invoker]
}

# Decision logs kept for log_retention_days in a bucket of their own (the _Default bucket keeps 30 days).
resource "google_logging_project_bucket_config" "watchdog" {
  count = var.log_retention_days == null ? 0 : 1

  project        = var.project
  location       = "global"
  bucket_id      = "${var.name}-logs"
  retention_days = var.log_retention_days
  description    = "Logs of the ${var.name} function: one JSON line per decision."
}

resource "google_logging_project_sink" "watchdog" {
  count = var.log_retention_days == null ? 0 : 1

  project     = var.project
  name        = "${var.name}-logs"
  description = "Routes the ${var.name} function's logs to its log bucket."
  destination = "logging.googleapis.com/${google_logging_project_bucket_config.watchdog[0].id}"
  # A gen2 function's Cloud Run service carries the function's name.
  filter                 = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${google_cloudfunctions2_function.watchdog.name}\""
  unique_writer_identity = true
}
