output "table_name" {
  description = "DynamoDB table of jobs and interruptions (`pyctl jobs status` reads it)."
  value       = aws_dynamodb_table.this.name
}

output "table_arn" {
  description = "ARN of the interruption table."
  value       = aws_dynamodb_table.this.arn
}

output "function_name" {
  description = "Name of the recovery Lambda."
  value       = module.function.function_name
}

output "function_arn" {
  description = "ARN of the recovery Lambda."
  value       = module.function.function_arn
}

output "role_arn" {
  description = "ARN of the Lambda's execution role."
  value       = module.function.role_arn
}

output "dead_letter_queue_url" {
  description = "URL of the dead-letter queue (events the function could not handle)."
  value       = module.function.dead_letter_queue_url
}

output "dead_letter_queue_arn" {
  description = "ARN of the dead-letter queue."
  value       = module.function.dead_letter_queue_arn
}

output "event_rule_arns" {
  description = "EventBridge rule ARNs, keyed notices and state-change."
  value       = { for key, rule in aws_cloudwatch_event_rule.this : key => rule.arn }
}
