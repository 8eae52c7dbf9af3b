// Command bench measures the ratchet CNI plugin as a runtime runs it: it
// execs the built plugin with the CNI environment and the network config
// on stdin, in a fresh network namespace per iteration, and times each ADD
// and DEL process. Every scenario interleaves ratchet with the reference
// ptp plugin (+ static IPAM, built from the module version in go.mod) and
// with its floor: a trivial static Go binary exec'd the same way, and the
// same netlink requests made in-process. It prints a markdown table of
// medians and ratios (never timed assertions) and writes it to
// test/bench/results/latest.md.
//
//	go run ./test/bench            # full run, a few minutes
//	go run ./test/bench -smoke     # a few iterations of everything; fails only on errors
//
// It must run as root. It creates namespaces named ratchet-bench-<pid>-*
// and deletes every one of them at the end, on error and on Ctrl-C, as well
// as the parking namespaces ratchet makes for its store directories; a run
// killed with SIGKILL is swept by the next run. See docs/performance.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

type config struct {
	smoke    bool
	ratchet  string
	out      string
	links    []int
	parallel []int
	batch    int
	scale    float64
	warmup   int
	settle   time.Duration
	ips      bool
	podIPv6  bool
	only     string
	// captureBaseline is another ratchetctl whose capture the data-plane
	// scenario measures too, for an A/B of two builds.
	captureBaseline string
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", a...)
}

func main() {
	os.Exit(run())
}

func run() int {
	var cfg config
	var links, parallel string
	flag.BoolVar(&cfg.smoke, "smoke", false, "a few iterations of every scenario (for make check): fails on any error, asserts no timing")
	flag.StringVar(&cfg.ratchet, "ratchet", "", "the plugin binary to measure (default: build ./cmd/ratchet as make build does)")
	flag.StringVar(&cfg.out, "out", "", "results file (default test/bench/results/latest.md, or smoke.md with -smoke)")
	flag.StringVar(&links, "links", "1,16,64,256,1024", "links per pod for the pod-link scenarios")
	flag.StringVar(&parallel, "parallel", "1,4,16", "ADDs in flight for the throughput scenario")
	flag.IntVar(&cfg.batch, "batch", 32, "ADDs per batch in the throughput scenario")
	flag.Float64Var(&cfg.scale, "scale", 1, "multiply every iteration count by this")
	flag.IntVar(&cfg.warmup, "warmup", 1, "untimed iterations before each scenario")
	flag.DurationVar(&cfg.settle, "settle", 500*time.Millisecond, "pause after a batch of namespaces is deleted (the kernel tears them down in the background, holding the RTNL lock)")
	flag.BoolVar(&cfg.ips, "link-ips", true, "give each pod link end an IPv6 address")
	flag.BoolVar(&cfg.podIPv6, "pod-ipv6", true, "leave IPv6 on in the pods of the pod-link scenarios (false: disable_ipv6=1 there, as Docker does; implies -link-ips=false)")
	flag.StringVar(&cfg.only, "only", "", "run only these scenarios (comma-separated: version,veth,vxlan,pod,crossnode,parallel,lab,dataplane)")
	flag.StringVar(&cfg.captureBaseline, "capture-baseline", "", "data plane: also measure the capture of this ratchetctl binary (e.g. an earlier build), in the same rounds")
	flag.Parse()
	var err error
	if cfg.links, err = intList(links); err != nil {
		logf("-links: %v", err)
		return 2
	}
	if cfg.parallel, err = intList(parallel); err != nil {
		logf("-parallel: %v", err)
		return 2
	}
	for _, s := range strings.Split(cfg.only, ",") {
		switch strings.TrimSpace(s) {
		case "", "version", "veth", "vxlan", "pod", "crossnode", "parallel", "lab", "dataplane":
		default:
			logf("-only: unknown scenario %q (version, veth, vxlan, pod, crossnode, parallel, lab, dataplane)", s)
			return 2
		}
	}
	if !cfg.podIPv6 {
		cfg.ips = false
	}
	if cfg.smoke {
		cfg.warmup = 0
		cfg.settle = 0
		cfg.batch = min(cfg.batch, 16)
	}
	if os.Geteuid() != 0 {
		logf("must run as root: it creates network namespaces and netdevs")
		return 1
	}
	root, err := moduleRoot()
	if err != nil {
		logf("%v", err)
		return 1
	}
	if cfg.out == "" {
		name := "latest.md"
		if cfg.smoke {
			name = "smoke.md"
		}
		cfg.out = filepath.Join(root, "test", "bench", "results", name)
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer cancel()

	if swept := sweepStale(os.TempDir()); len(swept) > 0 {
		logf("removed what a killed earlier run left: %s", strings.Join(swept, ", "))
	}
	tmp := filepath.Join(os.TempDir(), fmt.Sprintf("%s%d", namePrefix, os.Getpid()))
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		logf("%v", err)
		return 1
	}
	set := newNetnsSet()
	// Cleanup runs on every way out of run: success, error, Ctrl-C.
	defer func() {
		if err := set.removeAll(); err != nil {
			logf("cleanup: %v", err)
		}
		os.RemoveAll(tmp)
	}()

	if hostNS, err = netns.Get(); err != nil {
		logf("%v", err)
		return 1
	}
	start := time.Now()
	bins, err := build(ctx, root, tmp, cfg.ratchet)
	if err != nil {
		logf("build: %v", err)
		return 1
	}
	logf("built in %v: %s", time.Since(start).Round(time.Millisecond), bins.ratchet)

	b := &bench{ctx: ctx, ns: set, bins: bins, tmp: tmp, cfg: cfg, res: map[string][]sample{}, stores: map[string]string{}}
	info := machineInfo(root, bins, cfg)
	if err := b.all(); err != nil {
		if ctx.Err() != nil {
			logf("interrupted; cleaning up")
			return 130
		}
		logf("FAIL: %v", err)
		return 1
	}
	info = append(info, fmt.Sprintf("run took %v; load average after: %s", time.Since(start).Round(time.Second), loadavg()))
	md := render(b.res, b.dpRes, info, b.ranLinks(), b.ranParallel(), b.labLinks(), bins.sizes(), cfg.smoke)
	fmt.Print(md)
	err = os.MkdirAll(filepath.Dir(cfg.out), 0o755)
	if err == nil {
		err = os.WriteFile(cfg.out, []byte(md), 0o644)
	}
	if err != nil {
		logf("write %s: %v", cfg.out, err)
		return 1
	}
	logf("wrote %s", cfg.out)
	return 0
}

// iterations per scenario (full run; -smoke uses a few, -scale multiplies).
func (b *bench) iters(full, smoke int) int {
	if b.cfg.smoke {
		return smoke
	}
	return max(1, int(float64(full)*b.cfg.scale+0.5))
}

func (b *bench) want(scenario string) bool {
	if b.cfg.only == "" {
		return true
	}
	for _, s := range strings.Split(b.cfg.only, ",") {
		if strings.TrimSpace(s) == scenario {
			return true
		}
	}
	return false
}

func (b *bench) ranLinks() []int {
	if !b.want("pod") {
		return nil
	}
	return b.cfg.links
}

func (b *bench) ranParallel() []int {
	if !b.want("parallel") {
		return nil
	}
	return b.cfg.parallel
}

// all runs every scenario.
func (b *bench) all() error {
	var err error
	if b.node, err = b.ns.create("node"); err != nil {
		return err
	}
	if b.fpark, err = b.ns.create("floorpark"); err != nil {
		return err
	}
	// Like ratchet's parking namespace: IPv6 off, so parked ends never
	// speak on their own.
	for _, key := range []string{"all", "default"} {
		if err := sysctlIn(b.fpark, "net/ipv6/conf/"+key+"/disable_ipv6", "1"); err != nil {
			return err
		}
	}
	if b.want("version") {
		if err := b.version(b.iters(101, 3)); err != nil {
			return err
		}
	}
	if b.want("veth") {
		if err := b.staticVeth(b.iters(41, 3)); err != nil {
			return err
		}
	}
	if b.want("vxlan") {
		if err := b.vxlan(b.iters(21, 2)); err != nil {
			return err
		}
	}
	if b.want("pod") {
		for _, n := range b.cfg.links {
			full, smoke := 31, 2
			switch {
			case n >= 1024:
				full, smoke = 7, 1
			case n >= 256:
				full, smoke = 11, 1
			case n >= 64:
				full = 15
			case n >= 16:
				full = 21
			}
			if err := b.podLinks(podLinkSpec{n: n, ips: b.cfg.ips}, b.iters(full, smoke)); err != nil {
				return err
			}
		}
	}
	if b.want("crossnode") {
		if err := b.crossNode(b.iters(31, 2)); err != nil {
			return err
		}
	}
	if b.want("lab") {
		if err := b.labOne(b.iters(31, 2)); err != nil {
			return err
		}
		if err := b.labAllOf(b.labLinks(), b.iters(7, 1)); err != nil {
			return err
		}
	}
	if b.want("dataplane") {
		// Rounds of every path: a 3 s iperf3 test and 200 pings each
		// (a smoke run: one round, 1 s, 20 pings).
		secs, pings := 3, 200
		if b.cfg.smoke {
			secs, pings = 1, 20
		}
		if err := b.dataplane(b.iters(7, 1), secs, pings); err != nil {
			return err
		}
	}
	if b.want("parallel") {
		for _, k := range b.cfg.parallel {
			if err := b.parallel(k, b.cfg.batch, b.iters(7, 1)); err != nil {
				return err
			}
		}
	}
	// The node must hold nothing but lo: ptp's host ends went with its DELs.
	h, err := handleIn(b.node)
	if err != nil {
		return err
	}
	defer h.Close()
	ls, err := h.LinkList()
	if err != nil {
		return err
	}
	for _, l := range ls {
		if l.Attrs().Name != "lo" {
			return fmt.Errorf("the node namespace still holds %s after every DEL", l.Attrs().Name)
		}
	}
	return nil
}

// binaries are the executables the benchmark execs.
type binaries struct {
	dir                           string // also CNI_PATH
	ratchet, ptp, static, trivial string
	// ratchetctl is the CLI of the lab scenario.
	ratchetctl string
	// ratchetd is the node agent of the cross-node scenario.
	ratchetd string
}

func (bs *binaries) sizes() map[string]int64 {
	m := map[string]int64{}
	for name, path := range map[string]string{"ratchet": bs.ratchet, "ptp": bs.ptp, "static": bs.static, "trivial": bs.trivial} {
		if fi, err := os.Stat(path); err == nil {
			m[name] = fi.Size()
		}
	}
	return m
}

// build makes the plugin (unless given), the reference plugins from the
// module versions in go.mod, and the trivial binary, all static and
// stripped as make build makes the plugin.
func build(ctx context.Context, root, tmp, ratchet string) (*binaries, error) {
	dir := filepath.Join(tmp, "bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	gobin := goBinary()
	goBuild := func(workdir string, pkgs ...string) error {
		args := append([]string{"build", "-trimpath", "-ldflags", "-s -w -X main.Version=bench", "-o", dir + "/"}, pkgs...)
		cmd := exec.CommandContext(ctx, gobin, args...)
		cmd.Dir = workdir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	pkgs := []string{"github.com/containernetworking/plugins/plugins/main/ptp", "github.com/containernetworking/plugins/plugins/ipam/static", "./cmd/ratchetd", "./cmd/ratchetctl"}
	if ratchet == "" {
		pkgs = append(pkgs, "./cmd/ratchet")
	}
	if err := goBuild(root, pkgs...); err != nil {
		return nil, err
	}
	triv := filepath.Join(tmp, "trivial")
	if err := os.MkdirAll(triv, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(triv, "go.mod"), []byte("module trivial\n\ngo 1.21\n"), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(triv, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644); err != nil {
		return nil, err
	}
	if err := goBuild(triv, "."); err != nil {
		return nil, err
	}
	bs := &binaries{dir: dir, ratchet: filepath.Join(dir, "ratchet"), ptp: filepath.Join(dir, "ptp"),
		static: filepath.Join(dir, "static"), trivial: filepath.Join(dir, "trivial"), ratchetd: filepath.Join(dir, "ratchetd"), ratchetctl: filepath.Join(dir, "ratchetctl")}
	if ratchet == "" {
		ratchet = bs.ratchet
	}
	if err := installFile(ratchet, bs.ratchet); err != nil {
		return nil, err
	}
	// Every binary is measured as installed, not as the linker left it.
	for _, p := range []string{bs.ptp, bs.static, bs.trivial, bs.ratchetctl} {
		if err := installFile(p, p); err != nil {
			return nil, err
		}
	}
	return bs, nil
}

// installFile copies src to dst with write(2), as install(1), cp or a
// package manager puts a plugin in /opt/cni/bin. The Go linker writes its
// output through a shared mapping, and a file written that way execs
// measurably slower for as long as it stays in the page cache, a bigger
// binary more so (docs/performance.md, "Measured as installed"): it is
// not what a node runs. The copy
// streams: the plugins' peak RSS is read from wait4, and a child forked
// from this process counts this process's own peak as well.
func installFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".install"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}

func goBinary() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// moduleRoot finds the repository: the directory, at or above the working
// directory, whose go.mod declares ratchet's module.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/ratchet-cni/ratchet\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from the ratchet repository (no go.mod of github.com/ratchet-cni/ratchet at or above the working directory)")
		}
		dir = parent
	}
}

func machineInfo(root string, bins *binaries, cfg config) []string {
	var info []string
	info = append(info, "date: "+time.Now().Format(time.RFC3339))
	if out, err := exec.Command("git", "-C", root, "describe", "--tags", "--always", "--dirty").Output(); err == nil {
		info = append(info, "ratchet: "+strings.TrimSpace(string(out)))
	}
	if cfg.ratchet != "" {
		info = append(info, "plugin binary: "+cfg.ratchet+" (measured as installed: copied with write(2), like every binary here)")
	} else {
		info = append(info, "plugin binary: built by the benchmark as make build builds it")
	}
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		info = append(info, "kernel: "+unix.ByteSliceToString(uts.Release[:]))
	}
	info = append(info, fmt.Sprintf("CPUs: %d (%s); %s", runtime.NumCPU(), cpuModel(), runtime.Version()))
	info = append(info, "load average before: "+loadavg())
	mode := "full run"
	if cfg.smoke {
		mode = "smoke run"
	}
	info = append(info, fmt.Sprintf("%s: warm-up %d, settle %v, scale %g; pod-link scenarios: %s, %s", mode, cfg.warmup, cfg.settle, cfg.scale,
		map[bool]string{true: "one IPv6 /64 per link end", false: "no addresses"}[cfg.ips],
		map[bool]string{true: "IPv6 on in the pods (the kernel default)", false: "IPv6 off in the pods"}[cfg.podIPv6]))
	return info
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func intList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}
