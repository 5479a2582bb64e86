output "autoscaling_group_name" {
  description = "Name of the pool's Auto Scaling group."
  value       = aws_autoscaling_group.this.name
}

output "autoscaling_group_arn" {
  description = "ARN of the pool's Auto Scaling group."
  value       = aws_autoscaling_group.this.arn
}

output "launch_template_id" {
  description = "ID of the pool's launch template (spot recovery launches replacements from it)."
  value       = aws_launch_template.this.id
}

output "launch_template_version" {
  description = "Latest version of the launch template."
  value       = aws_launch_template.this.latest_version
}

output "security_group_id" {
  description = "The nodes' security group (reference it to let the nodes reach other services)."
  value       = aws_security_group.this.id
}

output "role_name" {
  description = "Name of the node IAM role."
  value       = aws_iam_role.node.name
}

output "role_arn" {
  description = "ARN of the node IAM role."
  value       = aws_iam_role.node.arn
}

output "instance_profile_arn" {
  description = "ARN of the node instance profile."
  value       = aws_iam_instance_profile.node.arn
}

output "capacity_reservation_id" {
  description = "The capacity reservation or capacity block the pool is pinned to; null unless reserved."
  value       = local.reservation_id
}

output "tags" {
  description = "The tags on every resource and instance of the pool (including the keys the watchdog and spot recovery read)."
  value       = local.tags
}

output "gpu_capacity" {
  description = "The pool's GPU capacity: cloud, capacity kind, instance type, GPU, GPUs per instance, and instances (reserved: the reservation's size; otherwise the desired size)."
  value = {
    cloud             = "aws"
    capacity          = var.capacity
    instance_type     = var.instance_type
    gpu               = var.gpu
    gpus_per_instance = var.gpus_per_instance
    instances         = local.reserved && var.reservation != null ? var.reservation.instance_count : var.desired_size
  }
}
