output "function_name" {
  description = "Name of the Cloud Function."
  value       = google_cloudfunctions2_function.watchdog.name
}

output "function_uri" {
  description = "HTTPS endpoint of the function (internal ingress only; Cloud Scheduler calls it)."
  value       = google_cloudfunctions2_function.watchdog.service_config[0].uri
}

output "service_account_email" {
  description = "The function's runtime identity."
  value       = google_service_account.runtime.email
}

output "scheduler_job" {
  description = "ID of the Cloud Scheduler job that runs the watchdog."
  value       = google_cloud_scheduler_job.watchdog.id
}

output "custom_roles" {
  description = "IDs of the read and act custom roles."
  value = {
    read = google_project_iam_custom_role.read.id
    act  = google_project_iam_custom_role.act.id
  }
}

output "log_bucket" {
  description = "ID of the log bucket holding the decision logs (null when log_retention_days is null)."
  value       = var.log_retention_days == null ? null : google_logging_project_bucket_config.watchdog[0].id
}
