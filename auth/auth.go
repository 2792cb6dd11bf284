// Package auth is how clients prove who they are to a registry instance: the accounts, each with
// its own generated password, and the mode that checks them. A mode is one variant of Spec; the
// registry asks the mode it was given for its config section and the files that section reads,
// and never knows which mode it runs.
//
//   - htpasswd (Spec's zero value): the registry checks a bcrypt file on every request.
package auth

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// HtpasswdKey is the config Secret's key of the htpasswd file.
const HtpasswdKey = "htpasswd"

// Spec chooses the auth mode. The zero value is htpasswd.
type Spec struct{}

// Section is distribution's auth section of config.yml: one mode's parameters under its name.
type Section map[string]map[string]any

// Mode is what a registry instance takes from its auth mode.
type Mode struct {
	// Section goes into config.yml.
	Section Section
	// Files are added to the registry's config Secret by key (secret values), mounted beside
	// config.yml; a change restarts the pods.
	Files map[string]pulumi.StringOutput
}

// ModeArgs is what every mode is built from.
type ModeArgs struct {
	// ConfigDir is where the registry finds its config Secret's files.
	ConfigDir string
	// Accounts are the instance's accounts and passwords.
	Accounts *Accounts
}

// NewMode builds the mode s chooses. Its resources (if any) are named from name.
func (s Spec) NewMode(ctx *pulumi.Context, name string, args ModeArgs, opts ...pulumi.ResourceOption) (*Mode, error) {
	if args.Accounts == nil || len(args.Accounts.Names) == 0 {
		return nil, fmt.Errorf("auth: %s: a mode needs at least one account", name)
	}
	return htpasswdMode(args), nil
}
