# One GPU pool: launch template, security group, node role, and the capacity that fits its kind
# (reserved: a targeted capacity reservation or a capacity block; on_demand: an Auto Scaling group;
# spot: an Auto Scaling group with a mixed-instances policy).

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

data "aws_ssm_parameter" "ami" {
  count = var.ami_id == null ? 1 : 0

  name = var.ami_ssm_parameter
}

# Locals that read data sources or resources; the rest are in locals.tf.
locals {
  partition      = data.aws_partition.current.partition
  region         = data.aws_region.current.region
  account        = data.aws_caller_identity.current.account_id
  ami_id         = var.ami_id != null ? var.ami_id : data.aws_ssm_parameter.ami[0].insecure_value
  reservation_id = one(concat(aws_ec2_capacity_reservation.this[*].id, aws_ec2_capacity_block_reservation.this[*].id))
}

# --- network -------------------------------------------------------------------------------------------

resource "aws_security_group" "this" {
  name_prefix = "${local.name}-"
  description = "pyctl GPU pool ${local.name}: serving and metrics ports from named sources only"
  vpc_id      = var.vpc_id
  tags        = local.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "this" {
  for_each = local.ingress_rules

  security_group_id            = aws_security_group.this.id
  description                  = each.value.port == null ? "All traffic between the nodes of the pool" : "TCP ${each.value.port} from ${coalesce(each.value.cidr, each.value.security_group)}"
  ip_protocol                  = each.value.port == null ? "-1" : "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  cidr_ipv4                    = each.value.cidr
  referenced_security_group_id = each.value.security_group == "self" ? aws_security_group.this.id : each.value.security_group
  tags                         = local.tags
}

resource "aws_vpc_security_group_egress_rule" "this" {
  for_each = local.egress_rules

  security_group_id            = aws_security_group.this.id
  description                  = each.value.port == null ? "All traffic between the nodes of the pool" : "TCP ${each.value.port} to ${each.value.cidr}"
  ip_protocol                  = each.value.port == null ? "-1" : "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  cidr_ipv4                    = each.value.cidr
  referenced_security_group_id = each.value.security_group == "self" ? aws_security_group.this.id : null
  tags                         = local.tags
}

# --- node role: SSM, CloudWatch agent, the model cache, the named boot secrets; nothing else ---------------

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  name_prefix        = "${substr(local.name, 0, 32)}-"
  description        = "pyctl GPU pool ${local.name} nodes"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "managed" {
  for_each = toset(["AmazonSSMManagedInstanceCore", "CloudWatchAgentServerPolicy"])

  role       = aws_iam_role.node.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/${each.value}"
}

data "aws_iam_policy_document" "node" {
  source_policy_documents = [var.model_cache.read_policy_json, var.model_cache.write_policy_json]

  dynamic "statement" {
    for_each = length([for s in local.secrets : s if s.source == "ssm"]) > 0 ? [1] : []

    content {
      sid     = "ReadBootParameters"
      actions = ["ssm:GetParameter"]
      resources = [for s in local.secrets : "arn:${local.partition}:ssm:${local.region}:${local.account}:parameter/${trimprefix(s.name, "/")}"
      if s.source == "ssm"]
    }
  }

  dynamic "statement" {
    for_each = length([for s in local.secrets : s if s.source == "secretsmanager"]) > 0 ? [1] : []

    content {
      sid     = "ReadBootSecrets"
      actions = ["secretsmanager:GetSecretValue"]
      # Secrets Manager appends a random 6-character suffix to the secret's ARN.
      resources = [for s in local.secrets : "arn:${local.partition}:secretsmanager:${local.region}:${local.account}:secret:${s.name}-??????"
      if s.source == "secretsmanager"]
    }
  }
}

resource "aws_iam_role_policy" "node" {
  name   = "model-cache-and-boot-secrets"
  role   = aws_iam_role.node.id
  policy = data.aws_iam_policy_document.node.json
}

resource "aws_iam_instance_profile" "node" {
  name_prefix = "${substr(local.name, 0, 32)}-"
  role        = aws_iam_role.node.name
  tags        = local.tags
}

# --- launch template -----------------------------------------------------------------------------------

resource "aws_launch_template" "this" {
  name_prefix            = "${local.name}-"
  description            = "pyctl GPU pool ${local.name} (${var.capacity})"
  image_id               = local.ami_id
  instance_type          = var.instance_type
  ebs_optimized          = "true"
  update_default_version = true
  user_data              = base64encode(local.user_data)
  tags                   = local.tags

  iam_instance_profile {
    arn = aws_iam_instance_profile.node.arn
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    # The node reads its own pyctl:job tag (the job it runs) through IMDS: tags/instance/pyctl:job.
    instance_metadata_tags = "enabled"
  }

  monitoring {
    enabled = var.detailed_monitoring
  }

  network_interfaces {
    device_index                = 0
    associate_public_ip_address = "false"
    delete_on_termination       = "true"
    security_groups             = [aws_security_group.this.id]
  }

  block_device_mappings {
    device_name = var.root_device_name

    ebs {
      volume_type           = "gp3"
      volume_size           = var.root_volume_gb
      iops                  = var.root_volume_iops
      throughput            = var.root_volume_throughput
      encrypted             = "true"
      kms_key_id            = var.ebs_kms_key_arn
      delete_on_termination = "true"
    }
  }

  # A capacity block is launched into by market type and reservation id in the template itself.
  dynamic "instance_market_options" {
    for_each = local.capacity_block ? [1] : []

    content {
      market_type = "capacity-block"
    }
  }

  dynamic "capacity_reservation_specification" {
    for_each = local.capacity_block ? [1] : []

    content {
      capacity_reservation_target {
        capacity_reservation_id = local.reservation_id
      }
    }
  }

  dynamic "tag_specifications" {
    for_each = toset(["instance", "volume", "network-interface"])

    content {
      resource_type = tag_specifications.value
      tags          = local.tags
    }
  }

  lifecycle {
    create_before_destroy = true
  }
}

# --- capacity --------------------------------------------------------------------------------------------

resource "aws_ec2_capacity_reservation" "this" {
  count = local.reserved && !local.capacity_block ? 1 : 0

  instance_type     = var.instance_type
  instance_platform = "Linux/UNIX"
  availability_zone = var.availability_zone
  instance_count    = var.reservation.instance_count
  # Targeted: only launches that name this reservation (this pool's group) consume it.
  instance_match_criteria = "targeted"
  ebs_optimized           = true
  end_date_type           = var.reservation.end_date == null ? "unlimited" : "limited"
  end_date                = var.reservation.end_date
  tags                    = local.tags

  lifecycle {
    precondition {
      condition     = var.availability_zone != null && var.reservation != null
      error_message = "A reserved pool needs availability_zone and reservation."
    }
  }
}

resource "aws_ec2_capacity_block_reservation" "this" {
  count = local.capacity_block ? 1 : 0

  capacity_block_offering_id = var.capacity_block.offering_id
  instance_platform          = "Linux/UNIX"
  # Destroying only forgets a capacity block (it stays paid for until its end date): pyctl's plan gate
  # asks for an explicit confirmation before a plan that buys or drops one.
  tags = local.tags
}

resource "aws_autoscaling_group" "this" {
  name_prefix           = "${local.name}-"
  min_size              = var.min_size
  max_size              = var.max_size
  desired_capacity      = var.desired_size
  vpc_zone_identifier   = var.subnet_ids
  capacity_rebalance    = local.is_spot ? var.spot.capacity_rebalance : false
  health_check_type     = "EC2"
  protect_from_scale_in = false
  # Models take minutes to load: do not count a booting node as unhealthy.
  health_check_grace_period = 900
  enabled_metrics = [
    "GroupDesiredCapacity",
    "GroupInServiceInstances",
    "GroupMaxSize",
    "GroupMinSize",
    "GroupPendingInstances",
    "GroupTerminatingInstances",
    "GroupTotalInstances",
  ]

  dynamic "launch_template" {
    for_each = local.is_spot ? [] : [aws_launch_template.this]

    content {
      id      = launch_template.value.id
      version = launch_template.value.latest_version
    }
  }

  dynamic "mixed_instances_policy" {
    for_each = local.is_spot ? [var.spot] : []

    content {
      instances_distribution {
        on_demand_base_capacity                  = mixed_instances_policy.value.on_demand_base
        on_demand_percentage_above_base_capacity = mixed_instances_policy.value.on_demand_percentage_above_base
        spot_allocation_strategy                 = mixed_instances_policy.value.allocation_strategy
        spot_max_price                           = mixed_instances_policy.value.max_price
      }

      launch_template {
        launch_template_specification {
          launch_template_id = aws_launch_template.this.id
          version            = aws_launch_template.this.latest_version
        }

        dynamic "override" {
          for_each = distinct(concat([var.instance_type], var.instance_types))

          content {
            instance_type = override.value
          }
        }
      }
    }
  }

  # Regular reservations: the group itself is pinned (capacity blocks are pinned in the launch template).
  dynamic "capacity_reservation_specification" {
    for_each = local.reserved && !local.capacity_block ? [var.reservation] : []

    content {
      capacity_reservation_preference = capacity_reservation_specification.value.match

      capacity_reservation_target {
        capacity_reservation_ids = [local.reservation_id]
      }
    }
  }

  dynamic "tag" {
    for_each = local.tags

    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  lifecycle {
    # The watchdog scales idle nodes in: desired_size only sets the size at creation, or Terraform would
    # bring scaled-in idle nodes back. The spot recovery's on-demand fallback sets the spot pool's
    # on-demand percentage to 100 and back (spot.on_demand_percentage_above_base is the value at creation
    # and the one the fallback goes back to). README: who owns which number.
    ignore_changes = [
      desired_capacity,
      mixed_instances_policy[0].instances_distribution[0].on_demand_percentage_above_base_capacity,
    ]

    precondition {
      condition     = var.min_size <= var.desired_size && var.desired_size <= var.max_size
      error_message = "Sizes must satisfy min_size <= desired_size <= max_size."
    }

    precondition {
      condition     = (var.capacity == "spot") == (var.spot != null)
      error_message = "spot settings are required for spot pools and only allowed there."
    }

    precondition {
      condition     = (var.capacity == "reserved") == (var.reservation != null || var.capacity_block != null)
      error_message = "reservation (or capacity_block) settings are required for reserved pools and only allowed there."
    }

    precondition {
      condition     = !local.reserved || var.reservation == null || try(var.reservation.match, "") != "capacity-reservations-only" || var.max_size <= try(var.reservation.instance_count, 0)
      error_message = "A capacity-reservations-only pool cannot grow beyond the reservation: max_size must be <= reservation.instance_count."
    }
  }
}
