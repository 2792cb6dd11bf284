// Package e2e is the end-to-end test suite of registry-stack: it deploys the Pulumi program in the
// repository root with the real `pulumi` CLI to whatever cluster the current KUBECONFIG names, then
// pushes and pulls images through the Ingress with TLS verified against the stack's CA, runs garbage
// collection under load, injects faults (replica loss, Redis outage, restarts, rolling config
// changes, credential and certificate rotation) beside pull and push loops, rejects invalid config
// through the CLI, checks pod and network security, changes the replica count, looks for plaintext
// secrets in outputs, logs, objects and the state, and destroys the stack, reporting what survives.
//
// The tests are behind the build tag `e2e` so that `go test ./...` never touches a cluster:
//
//	export GOTOOLCHAIN=local
//	go test -tags e2e -count=1 -timeout 75m -v ./e2e/
//
// See README.md in this directory for the environment variables and for running against minikube.
package e2e
