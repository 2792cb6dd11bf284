// Package auth is how clients prove who they are to a registry instance: the accounts, each with
// its own generated password, and the mode that checks them. A mode is one variant of Spec; the
// registry asks the mode it was given for its config section and the files that section reads,
// and never knows which mode it runs.
//
//   - htpasswd (Spec's zero value): the registry checks a bcrypt file on every request; every
//     account may do everything.
//   - token (Spec.Token): a token server (cesanta/docker_auth) checks the password once per token
//     and grants what the account's rules allow; the registry checks the token's signature.
package auth

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/internal/kube"
	"github.com/regstack/registry-stack/placement"
)

// HtpasswdKey is the config Secret's key of the htpasswd file.
const HtpasswdKey = "htpasswd"

// Spec chooses the auth mode. The zero value is htpasswd.
type Spec struct {
	// Token: nil is htpasswd mode.
	Token *Token
}

// Section is distribution's auth section of config.yml: one mode's parameters under its name, a
// struct whose YAML keeps its field order (a reordered file would roll every existing stack's pods).
type Section map[string]any

// Mode is what a registry instance takes from its auth mode.
type Mode struct {
	// Section goes into config.yml.
	Section Section
	// Files are added to the registry's config Secret by key (secret values), mounted beside
	// config.yml; a change restarts the pods.
	Files map[string]pulumi.StringOutput
	// Route is a path of the registry's hostnames the route sends to another Service (the token
	// server's realm); nil: none.
	Route *kube.Path
	// DependsOn are what the registry's Deployment waits for (the token server's).
	DependsOn []pulumi.Resource
}

// ModeArgs is what every mode is built from.
type ModeArgs struct {
	// ConfigDir is where the registry finds its config Secret's files.
	ConfigDir string
	// Accounts are the instance's accounts and passwords.
	Accounts *Accounts
	// Namespace and Hostname (token mode): the token server's namespace; the registry's host,
	// whose RealmPath the route sends to the token server.
	Namespace pulumi.StringInput
	Hostname  string
	// Placement adds scheduling and pod metadata to a server's pods (the registry's); nil adds nothing.
	Placement *placement.Spec
}

// NewMode builds the mode s chooses. Its resources (if any) are named from name.
func (s Spec) NewMode(ctx *pulumi.Context, name string, args ModeArgs, opts ...pulumi.ResourceOption) (*Mode, error) {
	if args.Accounts == nil || len(args.Accounts.Names) == 0 {
		return nil, fmt.Errorf("auth: %s: a mode needs at least one account", name)
	}
	if s.Token != nil {
		return newTokenMode(ctx, name, s.Token, args, opts...)
	}
	return htpasswdMode(args), nil
}
