# GitHub Actions reach this project through workload identity federation only (no service account keys).
# The pool's provider accepts tokens of one repository; each service account may be impersonated only by
# the workflow runs whose token subject matches:
# - plan: pull requests and the plan branch (drift checks); project viewer, state read and lock;
# - apply-<env>: jobs of the GitHub environment <env> (its required reviewers approve every apply).

locals {
  repo_subject = "repo:${var.github_repository}"
  principal    = "principal://iam.googleapis.com/${google_iam_workload_identity_pool.github.name}/subject"
  plan_subjects = {
    pull_request = "${local.repo_subject}:pull_request"
    branch       = "${local.repo_subject}:ref:refs/heads/${var.plan_branch}"
  }
  trusted_subjects = concat(values(local.plan_subjects), [for env in keys(var.envs) : "${local.repo_subject}:environment:${env}"])
  state_objects    = var.state_bucket == null ? "" : "projects/_/buckets/${var.state_bucket}/objects/"
  # env -> state prefix, for envs whose state is in this project's bucket
  state_envs = { for env, cfg in var.envs : env => trimsuffix(cfg.state_prefix, "/") if var.state_bucket != null && cfg.state_prefix != null }
}

resource "google_iam_workload_identity_pool" "github" {
  workload_identity_pool_id = var.pool_id
  display_name              = "GitHub Actions"
  description               = "pyctl CI of ${var.github_repository}"

  depends_on = [google_project_service.needed]
}

resource "google_iam_workload_identity_pool_provider" "github" {
  #checkov:skip=CKV_GCP_125:The condition pins assertion.repository and lists every trusted assertion.sub, built from var.github_repository, which checkov cannot resolve (tests/terraform/test_bootstrap_roots.py checks it).
  workload_identity_pool_id          = google_iam_workload_identity_pool.github.workload_identity_pool_id
  workload_identity_pool_provider_id = "github"
  display_name                       = "GitHub OIDC"
  attribute_mapping = {
    "google.subject"         = "assertion.sub"
    "attribute.repository"   = "assertion.repository"
    "attribute.ref"          = "assertion.ref"
    "attribute.environment"  = "assertion.environment"
    "attribute.event_name"   = "assertion.event_name"
    "attribute.workflow_ref" = "assertion.job_workflow_ref"
  }
  # Only tokens of this repository's pull requests, plan branch and env environments are exchanged at all;
  # the service-account bindings below then pick which of them may act as which account.
  attribute_condition = "assertion.repository == \"${var.github_repository}\" && (${join(" || ", [for s in local.trusted_subjects : "assertion.sub == \"${s}\""])})"

  oidc {
    issuer_uri = "https://token.actions.githubusercontent.com"
  }
}

# --- plan ----------------------------------------------------------------------------------------------

resource "google_service_account" "plan" {
  account_id   = "pyctl-ci-plan"
  display_name = "pyctl CI plan"
  description  = "Plans and drift checks of ${var.github_repository}: read-only, state lock"
}

resource "google_service_account_iam_member" "plan_federation" {
  for_each = local.plan_subjects

  service_account_id = google_service_account.plan.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "${local.principal}/${each.value}"
}

resource "google_project_iam_member" "plan" {
  #checkov:skip=CKV_GCP_117:roles/viewer is read-only and covers every service the modules refresh (Compute, GCS, IAM, Scheduler, Logging); per-service viewer roles would silently lag behind new modules.
  for_each = toset(var.plan_project_roles)

  project = var.project_id
  role    = each.value
  member  = google_service_account.plan.member
}

resource "google_storage_bucket_iam_member" "plan_read_state" {
  count = var.state_bucket == null ? 0 : 1

  bucket = google_storage_bucket.state[0].name
  role   = "roles/storage.objectViewer"
  member = google_service_account.plan.member
}

resource "google_storage_bucket_iam_member" "plan_lock" {
  count = var.state_bucket == null ? 0 : 1

  bucket = google_storage_bucket.state[0].name
  role   = "roles/storage.objectUser"
  member = google_service_account.plan.member

  condition {
    title       = "state-lock-only"
    description = "Only the <prefix>/<workspace>.tflock objects the GCS backend locks with"
    expression  = "resource.name.startsWith(\"${local.state_objects}\") && resource.name.endsWith(\".tflock\")"
  }
}

# --- apply, one service account per env ---------------------------------------------------------------

resource "google_service_account" "apply" {
  for_each = var.envs

  account_id   = "pyctl-ci-apply-${each.key}"
  display_name = "pyctl CI apply ${each.key}"
  description  = "Applies reviewed plans of env ${each.key} from the GitHub environment ${each.key}"
}

resource "google_service_account_iam_member" "apply_federation" {
  for_each = var.envs

  service_account_id = google_service_account.apply[each.key].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "${local.principal}/${local.repo_subject}:environment:${each.key}"
}

resource "google_project_iam_member" "apply" {
  #checkov:skip=CKV_GCP_49:Applying the modules creates node and function service accounts and attaches them to VMs, which needs serviceAccountAdmin/User; only the env's apply account holds them, usable only from its approved GitHub environment.
  for_each = {
    for pair in setproduct(keys(var.envs), var.apply_project_roles) : "${pair[0]} ${pair[1]}" => { env = pair[0], role = pair[1] }
  }

  project = var.project_id
  role    = each.value.role
  member  = google_service_account.apply[each.value.env].member
}

resource "google_storage_bucket_iam_member" "apply_read_state" {
  for_each = local.state_envs

  bucket = google_storage_bucket.state[0].name
  role   = "roles/storage.objectViewer"
  member = google_service_account.apply[each.key].member
}

resource "google_storage_bucket_iam_member" "apply_write_state" {
  for_each = local.state_envs

  bucket = google_storage_bucket.state[0].name
  role   = "roles/storage.objectUser"
  member = google_service_account.apply[each.key].member

  condition {
    title       = "state-of-${each.key}-only"
    description = "The objects under this env's backend prefix"
    expression  = "resource.name.startsWith(\"${local.state_objects}${each.value}/\")"
  }
}
