# One GPU pool on GCE: a dedicated service account, an instance template (GPUs, local SSD, Spot or standard
# scheduling, shielded VM, no external IP), a managed instance group, and for reserved pools a specific
# reservation the group is pinned to.

resource "google_service_account" "node" {
  project      = var.project
  account_id   = local.account_id
  display_name = "pyctl ${var.env} GPU pool ${var.name}"
  description  = "Identity of the ${var.name} GPU nodes: writes logs and metrics; bucket access is granted by the model-cache module."
}

# Minimal roles: the Ops Agent writes logs and (GPU) metrics. Nothing else at project level.
resource "google_project_iam_member" "node" {
  for_each = toset(["roles/logging.logWriter", "roles/monitoring.metricWriter"])

  project = var.project
  role    = each.value
  member  = "serviceAccount:${google_service_account.node.email}"
}

resource "google_compute_reservation" "this" {
  count = local.reserved ? 1 : 0

  project     = var.project
  name        = local.reservation_name
  zone        = var.pool.zones[0]
  description = "Reserved GPU capacity for pyctl pool ${var.name} (${var.env})."

  # Only instances that name this reservation consume it: other workloads cannot take the GPUs.
  specific_reservation_required = true
  delete_at_time                = try(var.pool.reservation.end_date, null)

  specific_reservation {
    count = var.pool.reservation.instance_count

    instance_properties {
      machine_type = var.pool.machine_type

      dynamic "guest_accelerators" {
        for_each = var.pool.accelerator_type == null ? [] : [var.pool.accelerator_type]
        content {
          accelerator_type  = guest_accelerators.value
          accelerator_count = var.pool.accelerator_count
        }
      }

      dynamic "local_ssds" {
        for_each = range(local.local_ssd_count)
        content {
          disk_size_gb = 375
          interface    = "NVME"
        }
      }
    }
  }
}

resource "google_compute_instance_template" "this" {
  project      = var.project
  region       = var.region
  name_prefix  = local.template_prefix
  description  = "pyctl ${var.env} ${var.name}: ${var.pool.machine_type}, ${var.pool.gpus_per_instance} x ${var.pool.gpu}, ${var.pool.capacity}."
  machine_type = var.pool.machine_type
  labels       = local.labels
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
    labels       = local.labels

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

  scheduling {
    # GPUs cannot live-migrate: every GPU VM stops for host maintenance.
    on_host_maintenance         = "TERMINATE"
    provisioning_model          = local.spot ? "SPOT" : "STANDARD"
    preemptible                 = local.spot
    automatic_restart           = !local.spot
    instance_termination_action = local.spot ? var.pool.termination_action : null
  }

  reservation_affinity {
    type = local.reserved ? "SPECIFIC_RESERVATION" : (local.spot ? "NO_RESERVATION" : "ANY_RESERVATION")

    dynamic "specific_reservation" {
      for_each = local.reserved ? [local.reservation_name] : []
      content {
        key    = "compute.googleapis.com/reservation-name"
        values = [specific_reservation.value]
      }
    }
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "google_compute_region_instance_group_manager" "this" {
  count = local.regional ? 1 : 0

  project            = var.project
  region             = var.region
  name               = local.base_name
  base_instance_name = local.base_name
  description        = "pyctl ${var.env} GPU pool ${var.name} (${var.pool.capacity})."

  distribution_policy_zones = var.pool.zones
  # Spot GPUs: take capacity in whichever zone has it. Standard: spread for resilience.
  distribution_policy_target_shape = local.spot ? "ANY" : "BALANCED"

  target_size        = var.pool.desired_size
  wait_for_instances = false

  version {
    name              = "primary"
    instance_template = google_compute_instance_template.this.self_link
  }

  # A new template reaches nodes as they are recreated: running training is not interrupted by an apply.
  update_policy {
    type                         = "OPPORTUNISTIC"
    minimal_action               = "REPLACE"
    instance_redistribution_type = "NONE"
    max_surge_fixed              = 0
    max_unavailable_fixed        = length(var.pool.zones)
  }

  all_instances_config {
    labels = local.labels
  }

  # The watchdog and the spot fallback resize the group; desired_size only sets the size at creation
  # (README: who owns which number).
  lifecycle {
    ignore_changes = [target_size]
  }
}

resource "google_compute_instance_group_manager" "this" {
  count = local.regional ? 0 : 1

  project            = var.project
  zone               = var.pool.zones[0]
  name               = local.base_name
  base_instance_name = local.base_name
  description        = "pyctl ${var.env} GPU pool ${var.name} (${var.pool.capacity})."

  target_size        = var.pool.desired_size
  wait_for_instances = false

  version {
    name              = "primary"
    instance_template = google_compute_instance_template.this.self_link
  }

  update_policy {
    type                  = "OPPORTUNISTIC"
    minimal_action        = "REPLACE"
    max_surge_fixed       = 0
    max_unavailable_fixed = 1
  }

  all_instances_config {
    labels = local.labels
  }

  # As on the regional group: the watchdog and the fallback own the running size.
  lifecycle {
    ignore_changes = [target_size]
  }

  depends_on = [google_compute_reservation.this]
}
