# The Google APIs this stack's resources need, enabled before anything else is created, so a fresh
# project's first apply works. disable_on_destroy = false: destroying an env must not switch off an API
# other envs or tools in the same project use. google_project_service itself calls the Service Usage
# API (serviceusage.googleapis.com), which must already be enabled on the project.

locals {
  project_services = sort(concat(
    [
      "compute.googleapis.com",              # instance templates, instance groups, reservations
      "iam.googleapis.com",                  # service accounts and custom roles
      "cloudresourcemanager.googleapis.com", # project IAM bindings
      "storage.googleapis.com",              # the model-cache bucket and the function sources
      "logging.googleapis.com",              # Ops Agent logs, the watchdog's log bucket and sink
      "monitoring.googleapis.com",           # Ops Agent GPU metrics, read by the watchdog
    ],
    local.watchdog_enabled ? [
      "cloudfunctions.googleapis.com",   # the watchdog (Cloud Functions 2nd gen)
      "run.googleapis.com",              # 2nd gen functions run as Cloud Run services
      "cloudbuild.googleapis.com",       # 2nd gen functions are built by Cloud Build
      "artifactregistry.googleapis.com", # ... into Artifact Registry images
      "cloudscheduler.googleapis.com",   # the watchdog's schedule
    ] : [],
  ))
}

resource "google_project_service" "this" {
  for_each = toset(local.project_services)

  project            = var.gcp.project
  service            = each.value
  disable_on_destroy = false
}
