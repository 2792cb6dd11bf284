package auth

import (
	"strings"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"golang.org/x/crypto/bcrypt"

	"github.com/regstack/registry-stack/internal/testutil"
)

// The htpasswd mode names its file in the registry's config directory and holds one bcrypt line
// per account, in order, each checking that account's generated password.
func TestHtpasswdModeChecksEveryAccountsPassword(t *testing.T) {
	var (
		mu       sync.Mutex
		file     string
		section  Section
		password = map[string]string{}
	)
	_, err := testutil.Run(t, nil, func(ctx *pulumi.Context) error {
		accts, err := NewAccounts(ctx, "reg", []string{"admin", "ci"})
		if err != nil {
			return err
		}
		mode, err := Spec{}.NewMode(ctx, "reg", ModeArgs{ConfigDir: "/etc/distribution", Accounts: accts})
		if err != nil {
			return err
		}
		section = mode.Section
		pulumi.All(mode.Files[HtpasswdKey], accts.Passwords["admin"], accts.Passwords["ci"]).ApplyT(func(v []any) error {
			mu.Lock()
			defer mu.Unlock()
			file, password["admin"], password["ci"] = v[0].(string), v[1].(string), v[2].(string)
			return nil
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := section["htpasswd"].(htpasswdParams).Path; got != "/etc/distribution/htpasswd" {
		t.Errorf("htpasswd path = %v", got)
	}
	lines := strings.Split(strings.TrimSpace(file), "\n")
	if len(lines) != 2 {
		t.Fatalf("htpasswd file has %d lines, want 2:\n%s", len(lines), file)
	}
	for i, name := range []string{"admin", "ci"} {
		user, hash, _ := strings.Cut(lines[i], ":")
		if user != name || bcrypt.CompareHashAndPassword([]byte(hash), []byte(password[name])) != nil {
			t.Errorf("line %d = %q, want %s with the bcrypt of its password", i, lines[i], name)
		}
	}
}

func TestAModeNeedsAnAccount(t *testing.T) {
	_, err := testutil.Run(t, nil, func(ctx *pulumi.Context) error {
		_, err := Spec{}.NewMode(ctx, "reg", ModeArgs{ConfigDir: "/x", Accounts: &Accounts{}})
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "at least one account") {
		t.Errorf("err = %v", err)
	}
}
