package auth

import (
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// htpasswdMode has the registry check each request against the accounts' bcrypt lines.
func htpasswdMode(args ModeArgs) *Mode {
	file := pulumi.ToStringArrayOutput(args.Accounts.Lines).ApplyT(func(lines []string) string {
		return strings.Join(lines, "\n") + "\n"
	}).(pulumi.StringOutput)
	return &Mode{
		Section: HtpasswdSection(args.ConfigDir),
		Files:   map[string]pulumi.StringOutput{HtpasswdKey: file},
	}
}

// HtpasswdSection is the htpasswd mode's config section, its file in configDir.
func HtpasswdSection(configDir string) Section {
	return Section{"htpasswd": htpasswdParams{Realm: "registry", Path: configDir + "/" + HtpasswdKey}}
}

type htpasswdParams struct {
	Realm string `yaml:"realm"`
	Path  string `yaml:"path"`
}
