package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/vishvananda/netlink"

	"github.com/ratchet-cni/ratchet/internal/testutil"
	"github.com/ratchet-cni/ratchet/internal/testutil/etcdtest"
)

// binDir holds the plugin and ratchetctl, built once for the lab tests.
var binDir string

// TestMain builds the plugin and ratchetctl, and runs the tests in a
// network namespace of their own (etcd listens on a 127.0.0.1 nobody
// else sees); without root, only the tests that need neither run.
func TestMain(m *testing.M) {
	if os.Getenv(testutil.OwnNetnsEnv) != "" {
		binDir = os.Getenv("RATCHETD_TEST_BIN")
		os.Exit(testutil.RunInOwnNetns(m))
	}
	if os.Geteuid() != 0 {
		os.Exit(m.Run())
	}
	os.Exit(func() int {
		dir, remove, err := testutil.BuildCommands("ratchet", "ratchetctl")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer remove()
		os.Setenv("RATCHETD_TEST_BIN", dir)
		return testutil.RunInOwnNetns(m)
	}())
}

// cni runs the plugin's cmd for pod lab/pod in n with the links annotation.
func cni(t *testing.T, cmd, dir, pod string, n ns.NetNS, annotation string) {
	t.Helper()
	if _, err := testutil.PodCNI(binDir, cmd, dir, pod, n.Path(), annotation); err != nil {
		t.Fatal(err)
	}
}

func ctl(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(filepath.Join(binDir, "ratchetctl"), args...).CombinedOutput(); err != nil {
		t.Fatalf("ratchetctl %q: %v: %s", args, err, out)
	}
}

// startRatchetd runs ratchetd in-process with args until the test ends
// and returns the base URL of its HTTP endpoints (health and metrics on
// one address).
func startRatchetd(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan net.Addr, 1)
	exited := make(chan int, 1)
	var log syncBuffer
	go func() {
		exited <- runCtx(ctx, append(args, "--health-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--log-level", "debug"), &log,
			func(addrs map[string]net.Addr) { got <- addrs["127.0.0.1:0"] })
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-exited; code != 0 {
			t.Errorf("ratchetd exited %d:\n%s", code, log.String())
		}
	})
	select {
	case a := <-got:
		return "http://" + a.String()
	case code := <-exited:
		exited <- code
		t.Fatalf("ratchetd exited %d before it ran:\n%s", code, log.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("ratchetd did not start:\n%s", log.String())
	}
	return ""
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// scrape reads url's /metrics with the exposition format's own parser.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("/metrics: %s: %s", resp.Status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// series returns the metrics of family name whose labels include want.
func series(fams map[string]*dto.MetricFamily, name string, want map[string]string) []*dto.Metric {
	var out []*dto.Metric
	f := fams[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		out = append(out, m)
	}
	return out
}

// one returns the value of the one series of name with labels want.
func one(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	ms := series(fams, name, want)
	if len(ms) != 1 {
		t.Fatalf("%s%v: %d series, want 1", name, want, len(ms))
	}
	switch {
	case ms[0].Counter != nil:
		return ms[0].Counter.GetValue()
	case ms[0].Gauge != nil:
		return ms[0].Gauge.GetValue()
	}
	t.Fatalf("%s: neither counter nor gauge", name)
	return 0
}

// stateOf returns the state label of the end's one ratchet_link_state
// series.
func stateOf(t *testing.T, fams map[string]*dto.MetricFamily, end map[string]string) string {
	t.Helper()
	ms := series(fams, "ratchet_link_state", end)
	if len(ms) != 1 || ms[0].Gauge.GetValue() != 1 {
		t.Fatalf("ratchet_link_state%v: %v, want one series of value 1", end, ms)
	}
	for _, l := range ms[0].Label {
		if l.GetName() == "state" {
			return l.GetValue()
		}
	}
	t.Fatal("ratchet_link_state has no state label")
	return ""
}

// TestMetricsOfALocalLab scrapes a ratchetd on the local store only (no
// etcd) over HTTP while a lab made by the plugin carries pings, has its
// cable pulled and is impaired: the series move with each.
func TestMetricsOfALocalLab(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	t.Cleanup(func() { testutil.RemoveParking(dir) })
	r1, r2 := testutil.NewNS(t), testutil.NewNS(t)
	cni(t, "ADD", dir, "r1", r1, `[{"name":"e1","ips":["192.0.2.1/24"],"peer":{"pod":"r2","name":"w1"}}]`)
	cni(t, "ADD", dir, "r2", r2, `[{"name":"w1","ips":["192.0.2.2/24"],"peer":{"pod":"r1","name":"e1"}}]`)
	base := startRatchetd(t, "--store-dir", dir, "--node", "n1", "--health-interval", "100ms")

	r1e1 := map[string]string{"namespace": "lab", "pod": "r1", "interface": "e1", "peer": "lab/r2:w1", "kind": "veth", "node": "n1"}
	r2w1 := map[string]string{"namespace": "lab", "pod": "r2", "interface": "w1", "peer": "lab/r1:e1", "kind": "veth", "node": "n1"}
	before := scrape(t, base)
	if got := one(t, before, "ratchet_links_read_ok", map[string]string{"node": "n1"}); got != 1 {
		t.Fatalf("ratchet_links_read_ok = %v", got)
	}
	for _, end := range []map[string]string{r1e1, r2w1} {
		if s := stateOf(t, before, end); s != "up" {
			t.Fatalf("state of %v: %q, want up", end, s)
		}
		if got := one(t, before, "ratchet_link_pulled", end); got != 0 {
			t.Fatalf("pulled of %v: %v", end, got)
		}
	}

	const count, size = 40, 1000
	got, _, err := testutil.Burst(r1, "192.0.2.2", count, size)
	if err != nil || got != count {
		t.Fatalf("pings answered: %d of %d (%v)", got, count, err)
	}
	after := scrape(t, base)
	// An echo of size bytes is an Ethernet frame of 14 + 20 + 8 + size.
	const frame = 14 + 20 + 8 + size
	for _, c := range []struct {
		name string
		end  map[string]string
		min  float64
	}{
		{"ratchet_link_receive_packets_total", r2w1, count},       // the requests
		{"ratchet_link_receive_bytes_total", r2w1, count * frame}, // the requests
		{"ratchet_link_receive_packets_total", r1e1, count},       // the replies
		{"ratchet_link_receive_bytes_total", r1e1, count * frame}, // the replies
		{"ratchet_link_receive_drops_total", r2w1, 0},
		{"ratchet_link_receive_errors_total", r2w1, 0},
	} {
		d := one(t, after, c.name, c.end) - one(t, before, c.name, c.end)
		if d < c.min || (c.min == 0 && d != 0) {
			t.Errorf("%s of %s/%s moved by %v, want at least %v (0: exactly)", c.name, c.end["pod"], c.end["interface"], d, c.min)
		}
	}
	// One series per direction: what r1 sent is r2's receive series.
	if fam := after["ratchet_link_transmit_packets_total"]; fam != nil {
		t.Errorf("transmit series are served: %v", fam)
	}

	ctl(t, "link", "down", "--store", dir, "lab/r1:e1")
	pulled := scrape(t, base)
	for _, end := range []map[string]string{r1e1, r2w1} {
		if s := stateOf(t, pulled, end); s != "pulled" {
			t.Errorf("state of %s after link down: %q, want pulled", end["pod"], s)
		}
		if got := one(t, pulled, "ratchet_link_pulled", end); got != 1 {
			t.Errorf("ratchet_link_pulled of %s after link down: %v", end["pod"], got)
		}
		if d := one(t, pulled, "ratchet_link_carrier_changes_total", end) - one(t, before, "ratchet_link_carrier_changes_total", end); d < 1 {
			t.Errorf("carrier changes of %s after link down moved by %v", end["pod"], d)
		}
	}
	if n := len(series(pulled, "ratchet_link_state", map[string]string{"state": "up"})); n != 0 {
		t.Errorf("%d series still say up after link down", n)
	}

	ctl(t, "link", "up", "--store", dir, "lab/r1:e1")
	// A rate alone: tbf, which every kernel here has (netem may be missing).
	ctl(t, "link", "set", "--store", dir, "--direction", "to", "--rate", "8mbit", "lab/r1:e1")
	impaired := scrape(t, base)
	if s := stateOf(t, impaired, r1e1); s != "impaired" {
		t.Errorf("state after link set: %q, want impaired", s)
	}
	for name, want := range map[string]float64{
		"ratchet_link_impairment_delay_seconds":         0,
		"ratchet_link_impairment_loss_ratio":            0,
		"ratchet_link_impairment_rate_bytes_per_second": 1e6,
	} {
		if got := one(t, impaired, name, r1e1); got < want*0.999 || got > want*1.001 {
			t.Errorf("%s toward r1:e1 = %v, want %v", name, got, want)
		}
	}
	// Toward r2 nothing is impaired: no series claims otherwise.
	if ms := series(impaired, "ratchet_link_impairment_rate_bytes_per_second", r2w1); len(ms) != 0 {
		t.Errorf("an impairment toward r2:w1 shows: %v", ms)
	}

	// The agent's own series, without etcd: none claims it.
	for _, name := range []string{"ratchet_agent_ready", "ratchet_agent_live", "ratchet_agent_parking_ok"} {
		if got := one(t, impaired, name, map[string]string{"node": "n1"}); got != 1 {
			t.Errorf("%s = %v, want 1", name, got)
		}
	}
	if got := one(t, impaired, "ratchet_agent_info", map[string]string{"node": "n1", "store": "local"}); got != 1 {
		t.Errorf("ratchet_agent_info = %v", got)
	}
	for _, name := range []string{"ratchet_agent_etcd_reachable", "ratchet_agent_reconcile_passes_total"} {
		if impaired[name] != nil {
			t.Errorf("%s is served without etcd", name)
		}
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if impaired[name] == nil {
			t.Errorf("%s is missing", name)
		}
	}
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.Contains(string(body), "etcd") {
		t.Errorf("/readyz on the local store: %s %q, want 200 without etcd", resp.Status, body)
	}
}

// TestMetricsWithEtcd scrapes a ratchetd with etcd once: the agent's
// etcd and reconcile series are there and say what happened.
func TestMetricsWithEtcd(t *testing.T) {
	testutil.RequireRoot(t)
	endpoints := etcdtest.StartEmbeddedEtcd(t)
	// The underlay: a veth in the test's own namespace (this kernel may
	// have no dummy device).
	ul := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "ul0"}, PeerName: "ul1"}
	if err := netlink.LinkAdd(ul); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netlink.LinkDel(ul) })
	addr, _ := netlink.ParseAddr("192.0.2.10/24")
	if err := netlink.AddrAdd(ul, addr); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(ul); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	base := startRatchetd(t, "--etcd-endpoints", strings.Join(endpoints, ","), "--etcd-insecure", "--node", "n1",
		"--store-dir", dir, "--socket", filepath.Join(t.TempDir(), "s.sock"), "--vtep-dev", "ul0", "--no-tunnel-filter",
		"--resync", "200ms", "--health-interval", "100ms")
	node := map[string]string{"node": "n1"}
	var fams map[string]*dto.MetricFamily
	for deadline := time.Now().Add(10 * time.Second); ; {
		fams = scrape(t, base)
		if fams["ratchet_agent_reconcile_passes_total"] != nil && one(t, fams, "ratchet_agent_reconcile_passes_total", node) >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no reconcile pass counted in 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := one(t, fams, "ratchet_agent_etcd_reachable", node); got != 1 {
		t.Errorf("ratchet_agent_etcd_reachable = %v", got)
	}
	if got := one(t, fams, "ratchet_agent_reconcile_errors_total", node); got != 0 {
		t.Errorf("ratchet_agent_reconcile_errors_total = %v", got)
	}
	if ts := one(t, fams, "ratchet_agent_last_reconcile_timestamp_seconds", node); time.Since(time.Unix(int64(ts), 0)) > time.Minute {
		t.Errorf("ratchet_agent_last_reconcile_timestamp_seconds = %v, not recent", ts)
	}
	if got := one(t, fams, "ratchet_agent_info", map[string]string{"node": "n1", "store": "etcd"}); got != 1 {
		t.Errorf("ratchet_agent_info{store=etcd} = %v", got)
	}
	if got := one(t, fams, "ratchet_links_read_ok", node); got != 1 {
		t.Errorf("ratchet_links_read_ok = %v", got)
	}
}
