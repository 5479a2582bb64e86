output "function_name" {
  description = "Name of the watchdog function (`aws lambda invoke` it to run now)."
  value       = module.function.function_name
}

output "function_arn" {
  description = "ARN of the watchdog function."
  value       = module.function.function_arn
}

output "role_arn" {
  description = "ARN of the function's execution role."
  value       = module.function.role_arn
}

output "sns_topic_arn" {
  description = "Topic that receives a summary when the watchdog acted or something is wrong."
  value       = aws_sns_topic.summary.arn
}

output "dead_letter_queue_arn" {
  description = "Queue holding invocations that failed after retries."
  value       = module.function.dead_letter_queue_arn
}

output "log_group_name" {
  description = "Log group with one JSON line per instance decision."
  value       = module.function.log_group_name
}

output "schedule_arn" {
  description = "ARN of the EventBridge Scheduler schedule."
  value       = aws_scheduler_schedule.this.arn
}
