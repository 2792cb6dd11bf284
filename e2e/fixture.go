//go:build e2e

package e2e

import (
	"testing"

	"github.com/regstack/registry-stack/e2e/kit"
)

// fixture is the deployment every step of the suite shares (kit.Fixture) plus what the steps
// record for later steps in its fields: images that must survive, upload sessions to find in the
// logs, secrets rotated away.
type fixture struct {
	*kit.Fixture

	imgKeep   *kit.Image         // pushed first; stays; pulled in a loop during GC
	imgDrop   *kit.Image         // deleted before the second GC, pushed again after it
	survivors []*kit.Image       // every acknowledged image that must still pull later
	uploads   []kit.UploadRecord // upload sessions of the pushes, to find in the registry logs

	// mirror is the pull-through cache of the mirror steps while it is deployed (nil otherwise).
	mirror *mirrorUnderTest

	// s3 is the S3 store fixture of the S3 phase (nil before it), and onS3 says that the stack
	// serves from its bucket (after the switch).
	s3   *kit.S3Store
	onS3 bool

	// leaseName is the GC lease (stack output gcLeaseName), read when first needed.
	leaseName string

	// token is what the token auth steps share (nil: not in token mode).
	token *tokenUnderTest

	// upgrade is what the previous release left (gc track; nil: not deployed from it).
	upgrade *upgradeState

	// retired are secrets the rotation steps replaced (name -> value): like the current ones they
	// must never appear in plain text in the state, logs, outputs or ConfigMaps.
	retired map[string]string
}

// repo names a repository of the current phase: a step that runs in both phases (push_pull) must
// not overwrite the tags of the first phase, whose images must still pull.
func (f *fixture) repo(name string) string {
	if f.onS3 {
		return "e2e/s3/" + name
	}
	return "e2e/" + name
}

// need skips a step whose prerequisite (set by an earlier, failed step) is missing.
func need(t *testing.T, ok bool, what string) {
	t.Helper()
	if !ok {
		t.Skipf("skipped: %s is missing (an earlier step failed)", what)
	}
}
