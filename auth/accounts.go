package auth

import (
	"fmt"

	"github.com/pulumi/pulumi-random/sdk/v4/go/random"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/internal/htpasswd"
)

// Accounts are an instance's accounts, each with its own generated password. Every mode checks
// the same passwords, so switching modes keeps them.
type Accounts struct {
	// Names are the accounts, the primary first.
	Names []string
	// Passwords by account (secret).
	Passwords pulumi.StringMap
	// Lines are the accounts' "name:bcrypt" lines, in Names' order (secret).
	Lines []pulumi.StringOutput
}

// NewAccounts generates one password per account and its bcrypt line, named from name. The
// primary's resource keeps the name it had when a stack had one account, so existing stacks keep
// their password; the resources are the caller's children (parent), as they always were.
func NewAccounts(ctx *pulumi.Context, name string, names []string, opts ...pulumi.ResourceOption) (*Accounts, error) {
	out := &Accounts{Names: names, Passwords: pulumi.StringMap{}}
	if len(names) == 0 {
		return out, nil
	}
	// The HMAC key of the htpasswd salts: a stack secret, in the state only (see internal/htpasswd).
	saltKey, err := random.NewRandomPassword(ctx, name+"-htpasswd-salt", &random.RandomPasswordArgs{
		Length: pulumi.Int(32), Special: pulumi.Bool(false),
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("auth: htpasswd salt key: %w", err)
	}
	for i, acct := range names {
		resName := name + "-password"
		if i > 0 {
			resName += "-" + acct
		}
		// Special characters limited to ones that need no quoting in a shell or a docker login prompt.
		pw, err := random.NewRandomPassword(ctx, resName, &random.RandomPasswordArgs{
			Length: pulumi.Int(32), OverrideSpecial: pulumi.String("-_.~"), MinSpecial: pulumi.Int(2),
			MinUpper: pulumi.Int(2), MinLower: pulumi.Int(2), MinNumeric: pulumi.Int(2),
		}, opts...)
		if err != nil {
			return nil, fmt.Errorf("auth: password of account %s: %w", acct, err)
		}
		out.Passwords[acct] = pw.Result
		user := acct
		// A low-cost bcrypt hash with a salt derived from the password (see internal/htpasswd):
		// the registry checks it on every request, and the same password always gives the same line.
		out.Lines = append(out.Lines, pulumi.All(pw.Result, saltKey.Result).ApplyT(func(v []any) (string, error) {
			return htpasswd.Entry(user, v[0].(string), v[1].(string))
		}).(pulumi.StringOutput))
	}
	return out, nil
}
