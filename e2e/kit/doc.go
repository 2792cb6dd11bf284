// Package kit holds the helpers the end-to-end suite (e2e, TestE2E) and the benchmarks (bench,
// TestBench) share: the fixture (one throwaway stack deployed from the repository root with the
// real `pulumi` CLI, its settings from the E2E_* variables, the steps run in order, the teardown
// and the summary report), wrappers of the pulumi and kubectl CLIs (port-forwards included), and a
// small OCI distribution client with random test images.
//
// Every other file is behind the build tag `e2e`, like the packages that use it, so `go build ./...`
// and `go test ./...` never compile it.
package kit
