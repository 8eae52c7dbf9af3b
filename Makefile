# ratchet: `make demo` and `make check` are the two commands a newcomer
# needs (as root, on a Debian/Ubuntu machine with Go).

GO        ?= go
export PATH := /usr/local/go/bin:$(PATH)
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.Version=$(VERSION)
BIN       := $(CURDIR)/bin
CACHE     := $(CURDIR)/.cache
CNI_BIN_DIR ?= /opt/cni/bin
# The topology page's test drives Debian's chromium, headless (internal/web;
# it never downloads a browser). Big (about 350 MB installed): `make
# web-deps` installs it alone.
WEB_PACKAGES := chromium
# Debian packages the tests need; installed only when missing.
# (docker.io is not here: where systemd runs, installing it starts Docker on
# the host. test/e2e/docker.sh and the tutorial install it when missing,
# except under systemd with no policy-rc.d denying the start: they then ask
# the operator to.)
TEST_PACKAGES := iproute2 iputils-ping iperf3 util-linux mount jq etcd-server etcd-client nftables busybox-static \
	$(WEB_PACKAGES)

BINARIES := ratchet ratchetctl ratchetd

.PHONY: all build install test check demo lint deps web-deps clean e2e fuzz fuzz-smoke tutorial lab-doc bench bench-smoke kernel-test kernel-smoke kernel-test-slow k8s-bins k8s-e2e

all: build

build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ $(addprefix ./cmd/,$(BINARIES)) ./examples/hello

install: build
	install -d $(CNI_BIN_DIR)
	install -m 0755 $(BIN)/ratchet $(CNI_BIN_DIR)/ratchet

# deps installs what the tests and the demo use and a fresh machine lacks.
deps:
	@missing=""; for p in $(TEST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

web-deps:
	@dpkg -s $(WEB_PACKAGES) >/dev/null 2>&1 || { echo "apt-get install $(WEB_PACKAGES)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(WEB_PACKAGES) >/dev/null; }

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

demo: deps build
	BIN=$(BIN) bash examples/demo/demo.sh

# Tests create network namespaces and netdevs: they need root. The
# Kubernetes binaries (k8s-bins) are there for the tests against a real
# kube-apiserver (internal/kube), found through RATCHET_K8S_BIN.
test: deps k8s-bins
	RATCHET_K8S_BIN=$$(GO=$(GO) bash test/k8s/build.sh) $(GO) test -count=1 ./...

# Fuzz targets: the netconf, LinkSpec and annotation parsers, Ratchet's
# legacy keys and CNI_ARGS (seed corpora in testdata/fuzz).
FUZZ_TARGETS := internal/netconf:FuzzLoad internal/netconf:FuzzLinkSpec internal/topology:FuzzAnnotations \
	internal/topology:FuzzLegacyKeys internal/topology:FuzzPodFromArgs
FUZZTIME ?= 60s

fuzz:
	@for t in $(FUZZ_TARGETS); do \
	  echo "== $$t ($(FUZZTIME))"; \
	  $(GO) test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) ./$${t%%:*} || exit 1; \
	done

# A count, not a duration: with a duration, go1.26's fuzz coordinator can
# report its own deadline as a failure on a loaded machine (golang/go#75804,
# fixed in go1.27). 150000 runs take about 4 s per target here.
fuzz-smoke:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=150000x

# End-to-end tests with real runtimes (cnitool, ctr, containerd CRI + crictl,
# podman), each in a throwaway "host" netns; installs what they need. As root.
# E2E="cnitool cri" runs a subset.
e2e: build
	BIN=$(BIN) bash test/e2e/run.sh $(E2E)

# Benchmarks (root): exec bin/ratchet as a runtime does, against ptp + static
# and against the floor; see docs/performance.md. bench-smoke asserts no timing.
bench: deps build
	$(GO) run ./test/bench -ratchet $(BIN)/ratchet

bench-smoke: deps build
	$(GO) run ./test/bench -smoke -ratchet $(BIN)/ratchet

# docs/tutorial.md, every command run in a sandbox (root). Builds crictl once if missing.
tutorial:
	bash test/tutorial/run.sh

# docs/lab.md ("Running a lab"), run by the tutorial's runner the same way (root).
lab-doc:
	TUTORIAL_DOC=$(CURDIR)/docs/lab.md bash test/tutorial/run.sh


# The kernel tests on a second kernel: Debian 12's 6.1 under qemu (software
# emulation), from an initramfs built by test/kernel/run.sh (root). The kernel
# and its modules are cached under .cache/kernel; it installs qemu-system-x86,
# busybox-static, xz-utils, cpio and kmod when missing. kernel-test runs pkg/link,
# internal/kind and internal/plugin there (but the crash and storm tests, too slow
# under emulation; about 2 min); kernel-smoke, in make check, runs their veth,
# vxlan, vlan, netem and pod-link tests (about 1.5 min, under 5 on a fresh machine).
kernel-test:
	GO=$(GO) bash test/kernel/run.sh full

kernel-smoke:
	GO=$(GO) bash test/kernel/run.sh smoke

# The two plugin tests kernel-test leaves out, on the same VM (crash safety and
# the 100-pod storm: about 6 min for the crash test alone).
kernel-test-slow:
	GO=$(GO) bash test/kernel/run.sh slow


# The Kubernetes binaries (kube-apiserver, controller-manager, scheduler,
# kubelet, kubectl, crictl) built from the Go module proxy, once, into
# $$HOME/.cache/ratchet/k8s-<version>/bin (about 20 min on 2 cores; then cached).
k8s-bins:
	GO=$(GO) bash test/k8s/build.sh

# A real single-node Kubernetes (etcd, control plane, kubelet, containerd) in
# a throwaway netns and mount namespace, ratchet installed by
# deploy/ratchet-daemonset.yaml (ratchetd in-cluster included), checked
# through kubectl (root; about 1 min once the binaries are cached). See docs/kubernetes.md, "Try it on a real kubelet".
k8s-e2e: build k8s-bins
	BIN=$(BIN) K8S_BIN=$$(GO=$(GO) bash test/k8s/build.sh) bash test/k8s/e2e.sh

check: lint test fuzz-smoke demo bench-smoke e2e tutorial lab-doc kernel-smoke k8s-e2e

clean:
	rm -rf $(BIN)
