// Command pulumi-resource-registry-stack is the component provider of registry-stack: it serves
// the RegistryStack component (package registrystack) to Pulumi programs in any language. Pulumi
// starts it as a plugin; schema.json tells the program's language what the component takes.
package main

import (
	_ "embed"
	"fmt"
	"os"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"

	"github.com/regstack/registry-stack/registrystack"
)

// schema is generated from the stack config keys (Pulumi.yaml) and the component's outputs:
// `go test ./cmd/pulumi-resource-registry-stack -update` rewrites it, and the test fails while it
// differs.
//
//go:embed schema.json
var schema []byte

// version is set at build time (-ldflags "-X main.version=...").
var version = "0.1.0"

func main() {
	if err := provider.ComponentMain(registrystack.Package, version, schema, construct); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
