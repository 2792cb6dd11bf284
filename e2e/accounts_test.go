//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/regstack/registry-stack/e2e/kit"
)

// stepRotateOneAccount replaces the password of one account (ci) the way the README says, while
// the other accounts are probed every 200 ms: they must keep working during and after the
// rollout; ci's old password is refused and its new one accepted afterwards.
func (f *fixture) stepRotateOneAccount(t *testing.T) {
	need(t, f.Client != nil, "deployment")
	ctx := context.Background()
	const acct = "ci"
	before, err := f.Pulumi.ExportResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	urn := stateURN(before, "random:index/randomPassword:RandomPassword", "registry-password-"+acct)
	if urn == "" {
		t.Fatalf("no RandomPassword registry-password-%s in the state", acct)
	}
	oldPass := f.Out.Passwords[acct]
	htpasswd, err := f.Kube.SecretValue(ctx, "registry-config", "htpasswd")
	if err != nil {
		t.Fatal(err)
	}
	oldHash := htpasswdHashes(htpasswd)[acct]

	// The other accounts, probed from before the update until after the rollout.
	others := map[string]string{}
	for _, a := range f.Settings.Accounts() {
		if a != acct {
			others[a] = f.Out.Passwords[a]
		}
	}
	var mu sync.Mutex
	probes, failures := 0, []string{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for user, pass := range others {
				code, err := f.Client.Ping(ctx, false, user, pass)
				mu.Lock()
				probes++
				if err != nil || code != http.StatusOK {
					failures = append(failures, fmt.Sprintf("%s: %d %v", user, code, err))
				}
				mu.Unlock()
			}
		}
	}()
	var stopOnce sync.Once
	stopProbes := func() { stopOnce.Do(func() { close(stop); <-done }) }
	defer stopProbes()
	time.Sleep(time.Second)

	ops, err := f.TimedUp(ctx, "pulumi up --replace registry-password-"+acct, "up-rotate-"+acct, "--replace", urn)
	if err != nil {
		t.Fatal(err)
	}
	upDone := time.Now()
	checkOnlyReplaced(t, "up --replace registry-password-"+acct, ops, urn)
	requireUpdated(t, "up --replace registry-password-"+acct, ops, before,
		[2]string{"kubernetes:core/v1:Secret", "registry-config"}, [2]string{"kubernetes:apps/v1:Deployment", f.Out.DeploymentName})
	if err := f.LoadOutputs(ctx); err != nil {
		t.Fatal(err)
	}
	newPass := f.Out.Passwords[acct]
	if newPass == oldPass {
		t.Fatalf("passwords[%s] did not change", acct)
	}
	for user, pass := range others {
		if f.Out.Passwords[user] != pass {
			t.Errorf("the password of %s changed too", user)
		}
	}
	f.retire("password of "+acct+" before rotation", oldPass)
	f.retire("bcrypt hash of "+acct+" before rotation", oldHash)

	c := f.waitCutover(ctx, acct, oldPass, newPass, upDone)
	lastOldOK, lastNewRefused := c.lastOldOK, c.lastNewRefused
	if c.err != nil {
		t.Errorf("account %s: the old password is not refused and the new one accepted consistently (errors %v): %v", acct, c.probeErrs, c.err)
	}
	if lastOldOK > rotationCutoverGrace || lastNewRefused > rotationCutoverGrace {
		t.Errorf("account %s: cutover: old accepted %s, new refused %s after up; allowed %s", acct, durOrNever(lastOldOK), durOrNever(lastNewRefused), rotationCutoverGrace)
	}
	// Let the probes of the other accounts see the whole rollout (pods Ready again).
	if err := f.Kube.RolloutStatus(ctx, f.Out.DeploymentName, kit.ReadyTimeout); err != nil {
		t.Error(err)
	}
	time.Sleep(2 * time.Second)
	stopProbes()
	mu.Lock()
	defer mu.Unlock()
	if len(failures) > 0 {
		t.Errorf("the other accounts failed %d of %d probes during the rotation of %s: %v", len(failures), probes, acct, failures)
	}
	f.Report.Fact("rotate one account (up --replace registry-password-%s): %s; other accounts %v: %d probes during and after the rollout, %d failed; %s old password refused, new accepted (old accepted %s, new refused %s after up)",
		acct, kit.SummarizeOps(ops), keysOfStrings(others), probes, len(failures), acct, durOrNever(lastOldOK), durOrNever(lastNewRefused))
}

func keysOfStrings(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
