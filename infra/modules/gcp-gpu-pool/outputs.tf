locals {
  group = local.regional ? google_compute_region_instance_group_manager.this[0] : google_compute_instance_group_manager.this[0]
}

output "service_account_email" {
  description = "The nodes' service account; give it bucket access with gcp-model-cache's pool_service_accounts."
  value       = google_service_account.node.email
}

output "instance_template" {
  description = "Self link of the current instance template."
  value       = google_compute_instance_template.this.self_link
}

output "instance_group_manager" {
  description = "The managed instance group: name, self link, instance group URL, and where it runs (region or zone)."
  value = {
    name           = local.group.name
    self_link      = local.group.self_link
    instance_group = local.group.instance_group
    distribution   = var.pool.distribution
    location       = local.regional ? var.region : var.pool.zones[0]
  }
}

output "reservation" {
  description = "The specific reservation of a reserved pool (name, zone, self link, count); null for other pools."
  value = local.reserved ? {
    name      = google_compute_reservation.this[0].name
    zone      = google_compute_reservation.this[0].zone
    self_link = google_compute_reservation.this[0].self_link
    count     = var.pool.reservation.instance_count
  } : null
}

output "labels" {
  description = "Labels on the template, its instances and disks (includes the pyctl-* keys and auto-shutdown)."
  value       = local.labels
}

output "gpu_capacity" {
  description = "This pool's entry of the env's gpu_capacity output (read by pyctl's plan summary): instances is the reservation's size for reserved pools (paid whether used or not), otherwise the desired size."
  value       = local.gpu_capacity
}

output "fallback" {
  description = "The spot fallback pair when fallback = on_demand (null otherwise): the spot group and its on-demand twin (name, self link), where they run (region or zone), and whether the location is a region."
  value = local.twin ? {
    spot_group     = local.group.name
    spot_self_link = local.group.self_link
    twin_group     = local.regional ? google_compute_region_instance_group_manager.twin[0].name : google_compute_instance_group_manager.twin[0].name
    twin_self_link = local.regional ? google_compute_region_instance_group_manager.twin[0].self_link : google_compute_instance_group_manager.twin[0].self_link
    regional       = local.regional
    location       = local.regional ? var.region : var.pool.zones[0]
    zones          = var.pool.zones
  } : null
}
