# The on-demand twin of a spot pool with `fallback = "on_demand"`: an instance template identical to the
# spot one except its scheduling (STANDARD, restarted by GCE, no termination action) and a managed group in
# the same zones with target_size 0. The fallback pass of the GCP watchdog (pyctl.clouds.gcp.recovery)
# sizes the twin up and the spot group down after too many preemptions or a capacity error, and back after
# the cool-down; Terraform sets neither size after creation (README: who owns which number).

locals {
  twin = local.spot && var.pool.fallback == "on_demand"

  # "-od" keeps the twin's base instance name within GCE's 58 characters and its group name apart.
  twin_name            = length(local.full_name) <= 55 ? "${local.full_name}-od" : "${substr(local.full_name, 0, 48)}-${substr(sha1(local.full_name), 0, 6)}-od"
  twin_template_prefix = "${trimsuffix(substr(local.twin_name, 0, 53), "-")}-"
  # The recovery pass tells the twin's VMs from the spot group's by these (and the watchdog treats them
  # as any on-demand pool VM).
  twin_labels = merge(local.labels, { "pyctl-capacity" = "on-demand", "pyctl-fallback" = "twin" })
}

resource "google_compute_instance_template" "twin" {
  count = local.twin ? 1 : 0

  project      = var.project
  region       = var.region
  name_prefix  = local.twin_template_prefix
  description  = "pyctl ${var.env} ${var.name} on-demand twin: ${var.pool.machine_type}, ${var.pool.gpus_per_instance} x ${var.pool.gpu}."
  machine_type = var.pool.machine_type
  labels       = local.twin_labels
  tags         = concat(["pyctl-gpu", local.base_name], var.network_tags)

  can_ip_forward = false

  metadata = {
    "startup-script"         = local.startup_script
    "shutdown-script"        = local.shutdown_script
    "enable-oslogin"         = "TRUE"
    "block-project-ssh-keys" = "TRUE"
    "serial-port-enable"     = "FALSE"
    # The job the node runs: read at boot from the metadata server (instance/attributes/pyctl-job).
    "pyctl-job" = local.job
  }

  disk {
    boot         = true
    source_image = var.source_image
    disk_type    = local.boot_disk_type
    disk_size_gb = var.pool.boot_disk_gb
    auto_delete  = true
    labels       = local.twin_labels

    dynamic "disk_encryption_key" {
      for_each = var.boot_disk_kms_key == null ? [] : [var.boot_disk_kms_key]
      content {
        kms_key_self_link = disk_encryption_key.value
      }
    }
  }

  dynamic "disk" {
    for_each = range(local.local_ssd_count)
    content {
      type         = "SCRATCH"
      disk_type    = "local-ssd"
      disk_size_gb = 375
      interface    = "NVME"
      auto_delete  = true
    }
  }

  dynamic "guest_accelerator" {
    for_each = var.pool.accelerator_type == null ? [] : [var.pool.accelerator_type]
    content {
      type  = guest_accelerator.value
      count = var.pool.accelerator_count
    }
  }

  # No access_config block: the nodes have no external IP.
  network_interface {
    network    = var.network
    subnetwork = var.subnetwork
    # A2, A3, A4 and G2 machine types need (A3 and later: only support) the gVNIC driver.
    nic_type = local.gvnic ? "GVNIC" : null
  }

  service_account {
    email  = google_service_account.node.email
    scopes = ["cloud-platform"] # access is limited by the service account's IAM roles, not by scopes
  }

  shielded_instance_config {
    enable_secure_boot          = var.secure_boot
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  # The one difference from the spot template: standard provisioning, restarted after host maintenance.
  scheduling {
    on_host_maintenance = "TERMINATE"
    provisioning_model  = "STANDARD"
    preemptible         = false
    automatic_restart   = true
  }

  # As the spot template: the twin stands in for spot capacity and does not take other pools' reservations.
  reservation_affinity {
    type = "NO_RESERVATION"
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "google_compute_region_instance_group_manager" "twin" {
  count = local.twin && local.regional ? 1 : 0

  project            = var.project
  region             = var.region
  name               = local.twin_name
  base_instance_name = local.twin_name
  description        = "pyctl ${var.env} GPU pool ${var.name}: on-demand twin of ${local.base_name} (spot fallback)."

  # Same zones and shape as the spot group, so the twin takes over where the jobs run.
  distribution_policy_zones        = var.pool.zones
  distribution_policy_target_shape = "ANY"

  target_size        = 0
  wait_for_instances = false

  version {
    name              = "primary"
    instance_template = google_compute_instance_template.twin[0].self_link
  }

  update_policy {
    type                         = "OPPORTUNISTIC"
    minimal_action               = "REPLACE"
    instance_redistribution_type = "NONE"
    max_surge_fixed              = 0
    max_unavailable_fixed        = length(var.pool.zones)
  }

  all_instances_config {
    labels = local.twin_labels
  }

  # The fallback pass and the watchdog own the size (0 at creation).
  lifecycle {
    ignore_changes = [target_size]
  }
}

resource "google_compute_instance_group_manager" "twin" {
  count = local.twin && !local.regional ? 1 : 0

  project            = var.project
  zone               = var.pool.zones[0]
  name               = local.twin_name
  base_instance_name = local.twin_name
  description        = "pyctl ${var.env} GPU pool ${var.name}: on-demand twin of ${local.base_name} (spot fallback)."

  target_size        = 0
  wait_for_instances = false

  version {
    name              = "primary"
    instance_template = google_compute_instance_template.twin[0].self_link
  }

  update_policy {
    type                  = "OPPORTUNISTIC"
    minimal_action        = "REPLACE"
    max_surge_fixed       = 0
    max_unavailable_fixed = 1
  }

  all_instances_config {
    labels = local.twin_labels
  }

  lifecycle {
    ignore_changes = [target_size]
  }
}
