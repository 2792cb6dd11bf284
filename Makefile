# Developer entry points. Every target runs from a clean clone; see README.md.
export GOTOOLCHAIN ?= local

STACK ?= minikube
E2E_TIMEOUT ?= 75m

.PHONY: build provider deploy preview destroy migrate-config test e2e bench

## build: compile the program where Pulumi.yaml's buildTarget puts it, listing the packages as they
## compile: the first build of a fresh clone takes minutes (about 9 on a cold Go cache), which
## `pulumi preview`/`up` would otherwise spend in silence; after it they find the binary up to date.
build:
	@echo "go build -o .bin/registry-stack . (the first build of a clone takes minutes; packages are listed as they compile)"
	go build -v -o .bin/registry-stack .

## provider: the component provider plugin (pulumi-resource-registry-stack) that serves the
## RegistryStack component to YAML, TypeScript, Python and .NET programs; examples/yaml loads it
## from .bin (see README, "Use it from your own program").
provider:
	go build -o .bin/pulumi-resource-registry-stack ./cmd/pulumi-resource-registry-stack

## deploy: create/select the stack (default: minikube) and deploy it to its cluster.
deploy: build
	pulumi stack select --create $(STACK)
	pulumi up --yes --stack $(STACK)

## preview: what `pulumi up` would change (what reviewers run on a pull request).
preview: build
	pulumi preview --diff --stack $(STACK)

## destroy: remove the stack's objects; the registry data is kept (see README, Operations).
destroy:
	pulumi destroy --yes --stack $(STACK)

## migrate-config: rewrite the stack's config from the flat layout of the releases before 2026-12
## into the structured one (README, Upgrading); prints the plan, APPLY=1 carries it out.
migrate-config:
	go run ./cmd/migrate-config --stack $(STACK) $(if $(APPLY),--apply)

PROMTOOL := $(CURDIR)/.bin/promtool

## test: build, vet, the offline unit tests and promtool on the alert rules (no cluster).
test: $(PROMTOOL)
	go build ./...
	go vet ./...
	go vet -tags e2e ./e2e/... ./bench/...
	go test -count=1 ./...
	$(PROMTOOL) check rules monitoring/testdata/alerts.rules.yaml monitoring/testdata/dashboard.rules.yaml
	cd monitoring/testdata && $(PROMTOOL) test rules alerts.test.yaml

# promtool of the Prometheus version pinned in tools/promtool/go.mod (its own module: the
# Prometheus dependencies stay out of the stack's); remove_all_sd leaves out service discovery.
$(PROMTOOL): tools/promtool/go.mod tools/promtool/go.sum
	go -C tools/promtool build -tags remove_all_sd -o $(PROMTOOL) github.com/prometheus/prometheus/cmd/promtool

## e2e: the end-to-end suite against the cluster of the current KUBECONFIG (real pulumi CLI). The
## program is built first, once: the suite's two deployments would otherwise both compile it.
e2e: build
	go test -tags e2e -count=1 -timeout $(E2E_TIMEOUT) -run '^TestE2E$$' -v ./e2e/

## bench: benchmarks on the cluster of the current KUBECONFIG; results in results/ (git-ignored).
bench:
	go test -tags e2e -count=1 -timeout 85m -run '^TestBench$$' -v ./bench/
