# Derived values, kept apart from the module calls so tests evaluate them with Terraform core offline.

locals {
  # GCP labels from tags, in one place: the env's tags (key "_env") and each pool's own tags.
  # CamelCase keys become snake_case; keys and values lowercase, other characters '_', at most 63 each;
  # a key must start with a letter (others are dropped).
  tag_sets = merge({ for name, pool in var.pools : name => pool.tags }, { "_env" = var.tags })
  label_sets = {
    for scope, tags in local.tag_sets : scope => {
      for k, v in tags :
      substr(lower(replace(replace(k, "/([a-z0-9])([A-Z])/", "$${1}_$${2}"), "/[^A-Za-z0-9_-]/", "_")), 0, 63) =>
      substr(lower(replace(v, "/[^A-Za-z0-9_-]/", "_")), 0, 63)
      if can(regex("^[A-Za-z]", k))
    }
  }
  labels = local.label_sets["_env"]
  pools  = { for name, pool in var.pools : name => merge(pool, { tags = local.label_sets[name] }) }

  model_versions = { for m in var.model_cache.models : m.name => m.version }
  cache          = var.model_cache.gcp
}
