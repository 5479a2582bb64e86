output "state_bucket" {
  description = "env.yaml backend.s3.bucket for the envs in this account."
  value       = aws_s3_bucket.state.bucket
}

output "state_kms_key_arn" {
  description = "env.yaml backend.s3.kms_key_id: the key the state is encrypted with."
  value       = aws_kms_key.state.arn
}

output "plan_role_arn" {
  description = "GitHub repository variable AWS_PLAN_ROLE_ARN (or this env's entry in AWS_PLAN_ROLE_ARNS)."
  value       = aws_iam_role.ci["plan"].arn
}

output "apply_role_arns" {
  description = "Per env: the variable AWS_APPLY_ROLE_ARN of the GitHub environment of that name."
  value       = { for env in keys(var.envs) : env => aws_iam_role.ci["apply-${env}"].arn }
}

output "github_variables" {
  description = "The `gh variable set` commands that wire CI to this account (docs/setup.md)."
  value = concat(
    ["gh variable set AWS_REGION --body ${var.region}"],
    [for env in keys(var.envs) : "gh variable set AWS_APPLY_ROLE_ARN --env ${env} --body ${aws_iam_role.ci["apply-${env}"].arn}"],
  )
}
