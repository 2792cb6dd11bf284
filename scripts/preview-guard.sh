#!/usr/bin/env bash
# preview-guard.sh: fail a pull-request preview whose plan replaces or deletes a resource that holds
# data or identity: the data claim and its PV, the StorageClass copy, Secrets (registry config and
# htpasswd, Redis password, TLS), the namespace (deleting it deletes everything in it), and the
# generated CA, keys and passwords.
#
#   pulumi preview --stack STACK --refresh --json > preview.json
#   GUARD_STACK=STACK scripts/preview-guard.sh preview.json      # or "-" to read standard input
#
# Input: the document `pulumi preview --json` prints (the preview digest, one JSON object:
# {"steps": [{"op", "urn", "oldState": {"type", ...}, "newState": {"type", ...},
# "replaceReasons"}], "changeSummary", ...}; pkg/display/json.go in pulumi/pulumi). Not the
# JSON-lines event stream that PULUMI_ENABLE_STREAMING_JSON_PREVIEW selects: that is refused.
#
# Environment:
#   GUARD_STACK             stack name, for the messages and the per-stack override label
#   GUARD_OVERRIDE_LABEL    override label (default allow-data-replacement). On the pull request,
#                           "<label>" overrides for every stack, "<label>:<stack>" for that one only
#   GITHUB_EVENT_PATH       set by GitHub Actions: the pull_request event, whose labels are read
#   ALLOW_DATA_REPLACEMENT  "true" overrides without a label (local runs)
#   GUARD_PROTECTED_TYPES   whitespace-separated type tokens replacing the default list below
#   GITHUB_STEP_SUMMARY     set by GitHub Actions: a Markdown report is appended to it
#
# Exit status: 0 nothing flagged, or flagged and overridden; 1 flagged; 2 usage error or an input
# that is not a preview digest (a failed or empty preview never passes).
set -euo pipefail

protected_default=(
  kubernetes:core/v1:PersistentVolumeClaim
  kubernetes:core/v1:PersistentVolume
  kubernetes:core/v1:Secret
  kubernetes:core/v1:Namespace
  kubernetes:storage.k8s.io/v1:StorageClass
  tls:index/privateKey:PrivateKey
  tls:index/selfSignedCert:SelfSignedCert
  random:index/randomPassword:RandomPassword
)
# Step ops (pkg/resource/deploy/step.go) after which the old object is gone: replace is the
# logical step the JSON shows; create-replacement/delete-replaced appear with
# --show-replacement-steps; import-replacement replaces the old object by an imported one.
destructive_ops=(delete replace create-replacement delete-replaced import-replacement)

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

[ $# -eq 1 ] || usage
case "$1" in -h | --help) usage ;; esac
command -v jq >/dev/null || { echo "preview-guard: jq is required" >&2; exit 2; }

input=$1
if [ "$input" = - ]; then
  input=$(mktemp)
  trap 'rm -f "$input"' EXIT
  cat >"$input"
elif [ ! -r "$input" ]; then
  echo "preview-guard: cannot read $input" >&2
  exit 2
fi

stack=${GUARD_STACK:-}
label=${GUARD_OVERRIDE_LABEL:-allow-data-replacement}
if [ -n "${GUARD_PROTECTED_TYPES:-}" ]; then
  read -r -a protected <<<"$GUARD_PROTECTED_TYPES"
else
  protected=("${protected_default[@]}")
fi
on_stack=${stack:+ on stack $stack}

# One JSON object with steps (or at least a change summary), nothing else.
if ! jq -e -s 'length == 1 and (.[0] | type == "object" and (has("steps") or has("changeSummary"))
      and ((.steps // []) | type == "array"))' "$input" >/dev/null 2>&1; then
  echo "::error title=preview-guard::the input is not the output of 'pulumi preview --json' (empty, failed, invalid JSON, or the streaming JSON-lines format); nothing was checked" >&2
  exit 2
fi

# A failed preview still prints its digest, with error diagnostics (and the CLI exits non-zero).
if jq -e '[.diagnostics[]? | select(.severity == "error")] | length > 0' "$input" >/dev/null; then
  echo "::error title=preview-guard::the preview failed; nothing was checked" >&2
  jq -r '.diagnostics[] | select(.severity == "error") | .message' "$input" >&2
  exit 2
fi

# Findings, one per URN: every destructive step of a protected type, grouped.
findings=$(jq -c \
  --argjson protected "$(printf '%s\n' "${protected[@]}" | jq -R . | jq -s .)" \
  --argjson ops "$(printf '%s\n' "${destructive_ops[@]}" | jq -R . | jq -s .)" '
  # The type token: from the state, else from the URN (urn:pulumi:STACK::PROJECT::PARENT$TYPE::NAME).
  def rtype: .newState.type // .oldState.type // ((.urn | split("::"))[2] // "" | split("$") | last);
  def rname: (.urn | split("::"))[3:] | join("::");
  (.steps // []) as $steps
  | [$steps[] | select(.op == "create") | .urn] as $created
  | [$steps[] | select((.op as $op | $ops | index([$op])) and (rtype as $t | $protected | index([$t])))]
  | group_by(.urn)
  | map({
      urn: .[0].urn,
      type: (.[0] | rtype),
      name: (.[0] | rname),
      ops: (map(.op) | unique),
      reasons: ([.[].replaceReasons // [] | .[]] | unique),
      retain: any(.[]; .oldState.retainOnDelete == true)
    }
    # With --refresh, an object deleted outside Pulumi shows as "delete" and the program then
    # creates it again under the same URN: the plan destroys nothing, but say so loudly.
    | .vanished = (.ops == ["delete"] and (.urn as $u | $created | index([$u]) != null)))
  ' "$input")

count=$(jq 'length' <<<"$findings")
blocking=$(jq '[.[] | select(.vanished | not)] | length' <<<"$findings")

# The override: ALLOW_DATA_REPLACEMENT=true, or the label on the pull request in the event.
override=""
if [ "${ALLOW_DATA_REPLACEMENT:-}" = true ]; then
  override="ALLOW_DATA_REPLACEMENT=true"
elif [ -n "${GITHUB_EVENT_PATH:-}" ] && [ -r "$GITHUB_EVENT_PATH" ]; then
  while IFS= read -r l; do
    if [ "$l" = "$label" ] || { [ -n "$stack" ] && [ "$l" = "$label:$stack" ]; }; then
      override="label $l"
    fi
  done < <(jq -r '.pull_request.labels[]?.name // empty' "$GITHUB_EVENT_PATH" 2>/dev/null || true)
fi

# Workflow-command text: % and newlines escaped (the message may contain "::").
escape() { local s=${1//%/%25}; s=${s//$'\r'/%0D}; printf '%s' "${s//$'\n'/%0A}"; }

# Fields joined by US (0x1f): unlike a tab, a non-blank IFS keeps empty fields apart.
while IFS=$'\x1f' read -r vanished ops type urn reasons retain; do
  what="$ops $type $urn"
  [ -z "$reasons" ] || what+=" (replace reasons: $reasons)"
  [ "$retain" != true ] || [ "$vanished" = true ] ||
    what+=" [retainOnDelete: Pulumi drops it from the state without deleting it]"
  if [ "$vanished" = true ]; then
    echo "::warning title=preview-guard: gone from the cluster$on_stack::$(escape "$what: refresh found it deleted outside Pulumi; pulumi up would create it again (empty/new). Find out why before deploying.")"
  elif [ -n "$override" ]; then
    echo "::warning title=preview-guard: data-destroying change allowed$on_stack::$(escape "$what (allowed by $override)")"
  else
    echo "::error title=preview-guard: data-destroying change$on_stack::$(escape "$what")"
  fi
done < <(jq -r '.[] | [(.vanished | tostring), (.ops | join(",")), .type, .urn,
                        (.reasons | join(",")), (.retain | tostring)] | join("\u001f")' <<<"$findings")

if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  {
    echo "### preview-guard${stack:+: stack \`$stack\`}"
    if [ "$count" -eq 0 ]; then
      echo "No replacement or deletion of a data-holding resource (claim, PV, StorageClass, Secret, namespace, CA, keys, passwords)."
    else
      if [ "$blocking" -eq 0 ]; then
        echo ":warning: Nothing in the plan replaces or deletes data, but a data-holding object is gone from the cluster (see below)."
      elif [ -n "$override" ]; then
        echo ":warning: **$blocking data-holding resource(s) would be replaced or deleted** — allowed by $override."
      else
        echo ":x: **$blocking data-holding resource(s) would be replaced or deleted.** If this is a deliberate migration, add the label \`$label\` (all stacks) or \`$label:${stack:-<stack>}\` to the pull request."
      fi
      echo
      echo "| op | type | name | replace reasons | note |"
      echo "|---|---|---|---|---|"
      jq -r '.[] | "| \(.ops | join(", ")) | `\(.type)` | `\(.name)` | \(.reasons | join(", ")) | \(
               if .vanished then "gone from the cluster (refresh); would be re-created"
               elif .retain then "retainOnDelete: dropped from the state, not deleted"
               else "" end) |"' <<<"$findings"
    fi
  } >>"$GITHUB_STEP_SUMMARY"
fi

if [ "$blocking" -eq 0 ]; then
  echo "preview-guard: no data-holding resource is replaced or deleted$on_stack."
  exit 0
fi
if [ -n "$override" ]; then
  echo "preview-guard: $blocking data-holding resource(s) replaced or deleted$on_stack, allowed by $override."
  exit 0
fi
echo "preview-guard: $blocking data-holding resource(s) would be replaced or deleted$on_stack (see the errors above)."
echo "preview-guard: for a deliberate migration, add the label '$label' (every stack) or '$label:${stack:-<stack>}' to the pull request."
exit 1
