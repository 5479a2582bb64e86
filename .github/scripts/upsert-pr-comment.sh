#!/usr/bin/env bash
# Post FILE as a pull-request comment, or update the earlier comment that starts with the same first line
# (the marker `<!-- pyctl-plan-summary env=NAME -->`), so each env keeps one comment however often it runs.
# Needs GH_TOKEN (pull-requests: write), GITHUB_REPOSITORY and PR in the environment.
set -euo pipefail
file="$1"
marker="$(head -n 1 "$file")"
case "$marker" in
  "<!-- pyctl-plan-summary env="*" -->") ;;
  *) echo "::error::$file does not start with a pyctl comment marker"; exit 1 ;;
esac
id="$(gh api --paginate "repos/$GITHUB_REPOSITORY/issues/$PR/comments" \
       --jq ".[] | select(.body | startswith(\"$marker\")) | .id" | head -n 1)"
if [ -n "$id" ]; then
  gh api -X PATCH "repos/$GITHUB_REPOSITORY/issues/comments/$id" -F "body=@$file" > /dev/null
else
  gh api -X POST "repos/$GITHUB_REPOSITORY/issues/$PR/comments" -F "body=@$file" > /dev/null
fi
