#!/bin/sh
# Retention, the first step of a GC run (gc.Retention): deletes the tags that no policy keeps,
# through the registry's API, while the registry is still writable; the collector that runs next
# frees what only they referenced.
#
# The API is a registry of this pod's own on its loopback ($LOCAL_CONFIG: the registry's storage
# and cache, no account), so no credential is involved. regctl (regclient) lists and deletes:
# `regctl tag delete` removes one tag, never the image another tag still points to.
#
# For each repository, the first policy in $POLICIES (gc.PoliciesFile) whose pattern matches it
# decides: a tag is kept when its name matches a keep expression, its image was created within
# keepYoungerThan, it is one of the keepNewest newest, or its image has no creation time. A
# signature or attestation tag (sha256-<digest>.sig|.att|.sbom) goes with its image: deleted when
# every tag of that image is, kept otherwise, left alone when no tag of the repository names it.
# A policy without deleteAll never deletes every tag of a repository: that repository is left as it
# is and the run is reported failed.
#
# Always exits 0 and leaves its result in $STATUS_DIR/retention (0, or what failed), so that GC runs
# whatever happens here; retention-kubectl.sh finish reports it and fails the Job.
#
# With the filesystem driver ($DATA_DIR set) it also records the size of the blobs before it starts;
# `retention.sh report`, beside the last step, measures them again once writes are restored and logs
# what the run freed (pushes in between count against it).
#
# Env: LOCAL_CONFIG, LOCAL_ADDR, POLICIES, REGCTL, DRY_RUN (true|false), STATUS_DIR, DATA_DIR (empty
# unless the filesystem driver); for tests NOW (seconds since 1970; default now) and PAGE (catalog
# page size; default 1000).
set -u

log() { echo "$(date -u +%H:%M:%S) retention: $*"; }
failed=
problem() {
	log "$*"
	failed="$failed; $*"
}
finish() {
	trap - EXIT
	[ -n "${reg_pid:-}" ] && kill "$reg_pid" 2>/dev/null && wait "$reg_pid" 2>/dev/null
	if [ -z "$failed" ]; then
		echo 0 >"$STATUS_DIR/retention"
	else
		echo "${failed#; }" >"$STATUS_DIR/retention"
	fi
	exit 0
}

# blobs_kib: the size of the blobs on the volume in KiB ("" without the filesystem driver).
blobs_kib() {
	[ -n "$DATA_DIR" ] && [ -d "$DATA_DIR/docker/registry/v2/blobs" ] && du -sk "$DATA_DIR/docker/registry/v2/blobs" | cut -f1
}

# report: waits (up to 30 minutes) until the last step has restored writes, then logs what the run
# freed on the volume.
report() {
	waited=0
	until [ -f "$STATUS_DIR/done" ] || [ "$waited" -ge 1800 ]; do
		sleep 2
		waited=$((waited + 2))
	done
	before=$(cat "$STATUS_DIR/blobs-before" 2>/dev/null)
	after=$(blobs_kib)
	if [ -z "$before" ] || [ -z "$after" ]; then
		log "freed: not measured (not the filesystem driver, or no blobs yet)"
	else
		log "freed: $((before - after)) KiB of blobs on the volume ($before KiB before retention, $after KiB after GC; pushes in between count against it)"
	fi
	exit 0
}
[ "${1:-}" = report ] && report

# Whatever stops this script early still records a failure and exits 0: GC runs anyway.
trap 'problem "retention.sh stopped before its end"; finish' EXIT

# rc runs regctl; never on the loops' input.
rc() { "$REGCTL" "$@" </dev/null; }

now=${NOW:-$(date -u +%s)}
tab=$(printf '\t')
blobs_kib >"$STATUS_DIR/blobs-before"
work=$(mktemp -d)
deleted_total=0
kept_total=0

registry serve "$LOCAL_CONFIG" >"$work/registry.log" 2>&1 </dev/null &
reg_pid=$!
rc registry set --tls disabled "$LOCAL_ADDR" >/dev/null 2>&1 || { problem "regctl cannot be configured"; finish; }
tries=0
until rc repo ls --limit 1 "$LOCAL_ADDR" >/dev/null 2>"$work/repos.err"; do
	tries=$((tries + 1))
	if [ "$tries" -ge 60 ] || ! kill -0 "$reg_pid" 2>/dev/null; then
		cat "$work/registry.log" "$work/repos.err"
		problem "the local registry did not answer"
		finish
	fi
	sleep 1
done

# The catalog, a page at a time: the registry answers at most its catalog.maxentries (1000) per
# request, and regctl does not follow the continuation itself.
page=${PAGE:-1000}
last=
: >"$work/repos"
while :; do
	if [ -n "$last" ]; then
		rc repo ls --limit "$page" --last "$last" "$LOCAL_ADDR" >"$work/page"
	else
		rc repo ls --limit "$page" "$LOCAL_ADDR" >"$work/page"
	fi || { problem "repositories not listed"; finish; }
	cat "$work/page" >>"$work/repos"
	[ "$(wc -l <"$work/page")" -lt "$page" ] && break
	last=$(tail -n 1 "$work/page")
done
log "repositories: $(wc -l <"$work/repos")"

# policy_for REPO: sets keep_newest, keep_age, delete_all and writes the keep expressions to
# $work/keep, from the first policy matching REPO; fails when none does.
policy_for() {
	matched=
	while IFS="$tab" read -r kind a b c; do
		case $kind in
		policy)
			[ -n "$matched" ] && break
			keep_newest=$a keep_age=$b delete_all=$c
			: >"$work/keep"
			;;
		repo)
			# The pattern unquoted: its * and ? are wildcards.
			# shellcheck disable=SC2254
			case "$1" in $a) matched=1 ;; esac
			;;
		keep) printf '%s\n' "$a" >>"$work/keep" ;;
		esac
	done <"$POLICIES"
	[ -n "$matched" ]
}

# kept_by_name REF: the tags of REF's repository that match a keep expression.
kept_by_name() {
	set --
	while IFS= read -r re; do
		set -- "$@" --include "$re"
	done <"$work/keep"
	[ $# -eq 0 ] && return 0
	rc tag ls "$@" "$ref"
}

# one REPO: applies its policy.
one() {
	repo=$1
	ref="$LOCAL_ADDR/$repo"
	policy_for "$repo" || return 0
	rc tag ls "$ref" >"$work/tags" || { problem "$repo: tags not listed"; return 0; }
	kept_by_name >"$work/named" || { problem "$repo: tags not matched"; return 0; }
	: >"$work/dated"
	: >"$work/keep-tags"
	: >"$work/signatures"
	while IFS= read -r tag; do
		case $tag in
		sha256-*.sig | sha256-*.att | sha256-*.sbom)
			echo "$tag" >>"$work/signatures"
			continue
			;;
		esac
		digest=$(rc image digest "$ref:$tag") || { problem "$repo:$tag: no digest"; return 0; }
		created=$(rc image config "$ref:$tag" --format '{{if .Created}}{{.Created.Unix}}{{end}}' 2>/dev/null) || created=
		if [ -z "$created" ]; then
			log "$repo:$tag: kept (its image has no creation time)"
			echo "$tag $digest" >>"$work/keep-tags"
			continue
		fi
		# Each rule picks from all tags: the newest N are counted among those kept otherwise too.
		keep=no
		if grep -qxF "$tag" "$work/named"; then
			keep=yes
		elif [ "$keep_age" -gt 0 ] && [ "$created" -ge $((now - keep_age)) ]; then
			keep=yes
		fi
		echo "$created $tag $digest $keep" >>"$work/dated"
	done <"$work/tags"
	: >"$work/delete"
	n=0
	sort -k1,1nr -k2,2 "$work/dated" >"$work/dated.sorted"
	while read -r created tag digest keep; do
		n=$((n + 1))
		if [ "$keep" = yes ] || [ "$n" -le "$keep_newest" ]; then
			echo "$tag $digest" >>"$work/keep-tags"
		else
			echo "$tag $digest" >>"$work/delete"
		fi
	done <"$work/dated.sorted"
	# Signatures follow their image: the digest sha256:<hex> of sha256-<hex>.sig.
	while IFS= read -r sig; do
		subject="sha256:${sig#sha256-}"
		subject=${subject%.*}
		if grep -q " $subject\$" "$work/keep-tags"; then
			echo "$sig $subject" >>"$work/keep-tags"
		elif grep -q " $subject\$" "$work/delete"; then
			echo "$sig $subject" >>"$work/delete"
		fi
	done <"$work/signatures"
	kept=$(wc -l <"$work/keep-tags")
	doomed=$(wc -l <"$work/delete")
	if [ "$doomed" -gt 0 ] && [ "$kept" -eq 0 ] && [ "$delete_all" != true ]; then
		problem "$repo: its policy keeps none of its $doomed tags; left as it is (set deleteAll to allow it)"
		return 0
	fi
	while read -r tag digest; do
		if [ "$DRY_RUN" = true ]; then
			log "$repo:$tag: would delete ($digest)"
			continue
		fi
		if rc tag delete "$ref:$tag"; then
			log "$repo:$tag: deleted ($digest)"
		else
			problem "$repo:$tag: not deleted"
			doomed=$((doomed - 1))
		fi
	done <"$work/delete"
	log "$repo: kept $kept, $([ "$DRY_RUN" = true ] && echo "would delete" || echo deleted) $doomed"
	kept_total=$((kept_total + kept))
	deleted_total=$((deleted_total + doomed))
}

while IFS= read -r repo; do
	one "$repo"
done <"$work/repos"
log "summary: $([ "$DRY_RUN" = true ] && echo "dry run, would delete" || echo deleted) $deleted_total tags, kept $kept_total"
finish
