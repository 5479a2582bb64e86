output "workload_identity_provider" {
  description = "GitHub repository variable GCP_WORKLOAD_IDENTITY_PROVIDER (or this project's entry in GCP_WORKLOAD_IDENTITY_PROVIDERS)."
  value       = google_iam_workload_identity_pool_provider.github.name
}

output "plan_service_account" {
  description = "GitHub repository variable GCP_PLAN_SERVICE_ACCOUNT (or the envs' entries in GCP_PLAN_SERVICE_ACCOUNTS)."
  value       = google_service_account.plan.email
}

output "apply_service_accounts" {
  description = "Per env: the variable GCP_APPLY_SERVICE_ACCOUNT of the GitHub environment of that name."
  value       = { for env, sa in google_service_account.apply : env => sa.email }
}

output "state_bucket" {
  description = "env.yaml backend.gcs.bucket (null when no state bucket was made here)."
  value       = var.state_bucket == null ? null : google_storage_bucket.state[0].name
}

output "github_variables" {
  description = "The `gh variable set` commands for the apply side of each env (docs/setup.md)."
  value = concat(
    [for env, sa in google_service_account.apply : "gh variable set GCP_APPLY_SERVICE_ACCOUNT --env ${env} --body ${sa.email}"],
    [for env in keys(var.envs) : "gh variable set GCP_WORKLOAD_IDENTITY_PROVIDER --env ${env} --body ${google_iam_workload_identity_pool_provider.github.name}"],
  )
}
