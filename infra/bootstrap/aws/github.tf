# GitHub Actions reach this account through OIDC only (no stored keys):
# - the plan role: pull requests of the repository and its main branch (the daily drift check); read-only
#   everywhere, plus reading every env's state and taking/releasing the state lock;
# - one apply role per env, trusted only from the GitHub environment of that name (its required reviewers
#   approve every apply), writing only that env's state key, and IAM only on the env's own role names.

locals {
  github_issuer     = "token.actions.githubusercontent.com"
  oidc_provider_arn = var.create_oidc_provider ? aws_iam_openid_connect_provider.github[0].arn : "arn:aws:iam::${var.account_id}:oidc-provider/${local.github_issuer}"
  repo_subject      = "repo:${var.github_repository}"
  bucket_arn        = aws_s3_bucket.state.arn

  # The IAM names the modules give an env's roles and instance profiles: "<env>-..." (pools, watchdog) and
  # "pyctl-<env>-..." (spot recovery).
  env_iam_resources = {
    for env in keys(var.envs) : env => flatten([
      for prefix in [env, "pyctl-${env}"] : [
        "arn:aws:iam::${var.account_id}:role/${prefix}-*",
        "arn:aws:iam::${var.account_id}:instance-profile/${prefix}-*",
      ]
    ])
  }
  # Managed policies the modules attach to the roles they create (aws-gpu-pool: the node role).
  attachable_policies = [
    "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
    "arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy",
  ]
}

resource "aws_iam_openid_connect_provider" "github" {
  count = var.create_oidc_provider ? 1 : 0

  url            = "https://${local.github_issuer}"
  client_id_list = ["sts.amazonaws.com"]
  tags           = local.tags
  # No thumbprint_list: IAM verifies GitHub's certificate against its own trusted CAs.
}

# One role per entry, trusting only the token subjects (`sub`) listed (StringEquals, no wildcards); tolist()
# gives every entry the same type, so the map converts for for_each.
locals {
  ci_roles = merge(
    {
      plan = {
        description = "plan and drift checks of ${var.github_repository} (read-only, state lock)"
        subjects    = tolist(["${local.repo_subject}:pull_request", "${local.repo_subject}:ref:refs/heads/${var.plan_branch}"])
      }
    },
    {
      for env in keys(var.envs) : "apply-${env}" => {
        description = "apply reviewed plans of env ${env} from the GitHub environment ${env}"
        subjects    = tolist(["${local.repo_subject}:environment:${env}"])
      }
    },
  )
}

resource "aws_iam_role" "ci" {
  for_each = local.ci_roles

  name                 = "pyctl-ci-${each.key}"
  description          = "pyctl CI: ${each.value.description}"
  max_session_duration = 3600
  tags                 = local.tags
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Federated = local.oidc_provider_arn }
      Action    = "sts:AssumeRoleWithWebIdentity"
      Condition = {
        StringEquals = {
          "${local.github_issuer}:aud" = "sts.amazonaws.com"
          "${local.github_issuer}:sub" = each.value.subjects
        }
      }
    }]
  })
}

# --- plan ----------------------------------------------------------------------------------------------

resource "aws_iam_role_policy_attachment" "plan_read_only" {
  role       = aws_iam_role.ci["plan"].name
  policy_arn = "arn:aws:iam::aws:policy/ReadOnlyAccess"
}

resource "aws_iam_role_policy" "plan_state" {
  name = "terraform-state-read-and-lock"
  role = aws_iam_role.ci["plan"].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      { Sid = "ListState", Effect = "Allow", Action = "s3:ListBucket", Resource = local.bucket_arn },
      { Sid = "ReadState", Effect = "Allow", Action = "s3:GetObject", Resource = "${local.bucket_arn}/*" },
      {
        # use_lockfile: the lock is an object "<key>.tflock" written and deleted beside the state
        Sid      = "TakeAndReleaseTheLock"
        Effect   = "Allow"
        Action   = ["s3:PutObject", "s3:DeleteObject"]
        Resource = "${local.bucket_arn}/*.tflock"
      },
      {
        Sid      = "UseTheStateKey"
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource = aws_kms_key.state.arn
      },
    ]
  })
}

# --- apply, one role per env -----------------------------------------------------------------------------

resource "aws_iam_role_policy_attachment" "apply" {
  for_each = {
    for pair in setproduct(keys(var.envs), var.apply_policy_arns) : "${pair[0]} ${pair[1]}" => { env = pair[0], arn = pair[1] }
  }

  role       = aws_iam_role.ci["apply-${each.value.env}"].name
  policy_arn = each.value.arn
}

resource "aws_iam_role_policy" "apply" {
  for_each = var.envs

  name = "terraform-state-and-env-iam"
  role = aws_iam_role.ci["apply-${each.key}"].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      { Sid = "ListState", Effect = "Allow", Action = "s3:ListBucket", Resource = local.bucket_arn },
      {
        Sid      = "ReadAndWriteThisEnvsState"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject"]
        Resource = ["${local.bucket_arn}/${each.value.state_key}", "${local.bucket_arn}/${each.value.state_key}.tflock"]
      },
      {
        Sid      = "ReleaseThisEnvsLock"
        Effect   = "Allow"
        Action   = "s3:DeleteObject"
        Resource = "${local.bucket_arn}/${each.value.state_key}.tflock"
      },
      {
        Sid      = "UseTheStateKey"
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource = aws_kms_key.state.arn
      },
      {
        Sid    = "ManageThisEnvsRoles"
        Effect = "Allow"
        Action = [
          "iam:CreateRole", "iam:DeleteRole", "iam:GetRole", "iam:UpdateRole", "iam:UpdateAssumeRolePolicy",
          "iam:TagRole", "iam:UntagRole", "iam:ListRoleTags", "iam:PassRole",
          "iam:PutRolePolicy", "iam:GetRolePolicy", "iam:DeleteRolePolicy", "iam:ListRolePolicies",
          "iam:ListAttachedRolePolicies", "iam:ListInstanceProfilesForRole",
          "iam:CreateInstanceProfile", "iam:DeleteInstanceProfile", "iam:GetInstanceProfile",
          "iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile",
          "iam:TagInstanceProfile", "iam:UntagInstanceProfile",
        ]
        Resource = local.env_iam_resources[each.key]
      },
      {
        Sid       = "AttachOnlyTheModulesManagedPolicies"
        Effect    = "Allow"
        Action    = ["iam:AttachRolePolicy", "iam:DetachRolePolicy"]
        Resource  = local.env_iam_resources[each.key]
        Condition = { ArnEquals = { "iam:PolicyARN" = local.attachable_policies } }
      },
    ]
  })
}
