// Package bench is TestBench, the benchmarks of registry-stack (issue 5): on one throwaway stack
// deployed with the fixture of the end-to-end suite (e2e/kit) it measures the unit test suite's
// wall time, deploy times, the data path (Ingress vs one pod vs the port-forward alone vs inside
// the cluster vs the disk), blob HEAD latency with the Redis cache warm and disabled, and GC time
// and write pause for growing repository counts, and writes results/bench.{md,json,png} in the
// repository root. benchpod/ is its registry client inside the cluster.
//
// Like the suite it is behind the build tag `e2e`, so `go test ./...` never touches a cluster:
//
//	export GOTOOLCHAIN=local
//	go test -tags e2e -count=1 -timeout 85m -run '^TestBench$' -v ./bench/   # make bench
//
// See BENCH.md in this directory for what each part measures and the BENCH_* variables.
package bench
