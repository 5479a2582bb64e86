# Names, labels and the rendered node scripts: everything the resources derive from the inputs.
# Kept apart from main.tf (no resources here), so tests evaluate it with Terraform core offline.

locals {
  # GCE names: the group's base instance name may have 58 characters (GCE appends "-xxxx"), a template
  # name_prefix 54, a service account id 6-30. Names that would be longer are cut and carry a hash.
  full_name       = "pyctl-${var.env}-${var.name}"
  base_name       = length(local.full_name) <= 58 ? local.full_name : "${substr(local.full_name, 0, 51)}-${substr(sha1(local.full_name), 0, 6)}"
  template_prefix = "${trimsuffix(substr(local.base_name, 0, 53), "-")}-"
  account_id      = format("%s-%s", replace(substr("${var.env}-${var.name}", 0, 23), "/-+$/", ""), substr(sha1("${var.env}/${var.name}"), 0, 6))

  spot     = var.pool.capacity == "spot"
  reserved = var.pool.capacity == "reserved"
  regional = var.pool.distribution == "regional"

  # Accelerator-optimized families whose machine types bring a fixed set of Local SSDs with them; the
  # template must not list those disks. Older families (N1, A2 standard, G2) take an explicit count.
  auto_local_ssd  = can(regex("^(a2-ultragpu|a3|a4|a4x)-", var.pool.machine_type))
  local_ssd_count = local.auto_local_ssd ? 0 : var.pool.local_ssd_count
  hyperdisk_only  = can(regex("^(a3-ultragpu|a4|a4x)-", var.pool.machine_type))
  boot_disk_type  = coalesce(var.boot_disk_type, local.hyperdisk_only ? "hyperdisk-balanced" : "pd-balanced")

  gvnic = can(regex("^(a2|a3|a4|a4x|g2)-", var.pool.machine_type))

  reservation_name = local.base_name
  job              = coalesce(var.checkpoint_job, var.name)

  # Label keys other pyctl components read (documented in README.md). These win over user labels.
  pyctl_labels = {
    "auto-shutdown"             = tostring(var.pool.auto_shutdown)
    "pyctl-env"                 = var.env
    "pyctl-pool"                = var.name
    "pyctl-capacity"            = replace(var.pool.capacity, "_", "-")
    "pyctl-gpu"                 = substr(lower(replace(var.pool.gpu, "/[^A-Za-z0-9_-]/", "-")), 0, 63)
    "pyctl-min-size"            = tostring(var.pool.min_size)
    "pyctl-watchdog-may-delete" = tostring(var.pool.watchdog_may_terminate)
  }
  labels = merge(var.labels, var.pool.tags, local.pyctl_labels)

  # The env's gpu_capacity entry. Reserved pools count the reservation: it is paid whether used or not.
  gpu_capacity = {
    cloud             = "gcp"
    capacity          = var.pool.capacity
    instance_type     = var.pool.machine_type
    gpu               = var.pool.gpu
    gpus_per_instance = var.pool.gpus_per_instance
    instances         = local.reserved ? var.pool.reservation.instance_count : var.pool.desired_size
  }

  templates_dir = "${path.module}/templates"
  startup_script = templatefile("${local.templates_dir}/startup.sh.tftpl", {
    env                 = var.env
    pool                = var.name
    capacity            = var.pool.capacity
    bucket              = var.model_cache.bucket
    key_prefix          = var.model_cache.key_prefix
    spot_watch          = local.spot
    model               = var.pool.model == null ? "" : var.pool.model
    model_version       = var.model_version == null ? "" : var.model_version
    nvme_path           = var.nvme_path
    agent_bundle_bucket = var.agent_bundle.bucket
    agent_bundle_key    = var.agent_bundle.key
    agent_bundle_sha256 = var.agent_bundle.sha256
    gpu_count           = var.pool.gpus_per_instance
  })
  shutdown_script = templatefile("${local.templates_dir}/shutdown.sh.tftpl", {
    pool           = var.name
    job            = local.job
    nvme_path      = var.nvme_path
    budget_seconds = var.shutdown_budget_seconds
    # The watcher polls every 2 s: one tick plus the upload of the newest step.
    upload_grace_seconds = 4
  })
}
