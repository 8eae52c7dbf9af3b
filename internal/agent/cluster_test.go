package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ratchet-cni/ratchet/internal/agent"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/store/etcdstore"
	"github.com/ratchet-cni/ratchet/internal/testutil"
	"github.com/ratchet-cni/ratchet/internal/testutil/etcdtest"
)

// pluginBin is the plugin built from this tree; the tests exec it on a
// simulated node as a runtime there would. ratchetdBin is the agent, for
// tests that need it in a process of its own (health_test.go).
var pluginBin, ratchetdBin, ctlBin string

// TestMain runs the tests in a network namespace of their own, where etcd
// listens on a 127.0.0.1 nobody else sees.
func TestMain(m *testing.M) {
	if os.Getenv(testutil.OwnNetnsEnv) == "" {
		os.Exit(testutil.RunInOwnNetns(m))
	}
	dir, err := os.MkdirTemp("", "ratchet-agent-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	build := exec.Command("go", "build", "-o", dir+"/", "github.com/ratchet-cni/ratchet/cmd/ratchet", "github.com/ratchet-cni/ratchet/cmd/ratchetd", "github.com/ratchet-cni/ratchet/cmd/ratchetctl")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build plugin: %v\n%s", err, out)
		os.Exit(1)
	}
	pluginBin, ratchetdBin, ctlBin = filepath.Join(dir, "ratchet"), filepath.Join(dir, "ratchetd"), filepath.Join(dir, "ratchetctl")
	code := testutil.RunInOwnNetns(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

func startEtcd(t testing.TB) []string { return etcdtest.StartEmbeddedEtcd(t) }

// etcdProcess is Debian's etcd as a child process that a test stops and
// starts again on the same data and port.
type etcdProcess struct {
	t         *testing.T
	m         *etcdtest.Member
	endpoints []string
}

func startEtcdProcess(t *testing.T) *etcdProcess {
	m := etcdtest.StartEtcdMember(t)
	return &etcdProcess{t: t, m: m, endpoints: []string{m.ClientURL}}
}

func (e *etcdProcess) stop()  { e.m.Kill() }
func (e *etcdProcess) start() { e.m.Restart(e.t, true) }

// parkingOf opens node n's parking namespace.
func parkingOf(t *testing.T, n *node) ns.NetNS {
	t.Helper()
	park, err := ns.GetNS(testutil.ParkingPath(n.dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { park.Close() })
	return park
}

type storeKey = store.AttachmentKey

// cluster is simulated nodes on one underlay (192.0.2.0/24), each with its
// own local store and a node agent, sharing an etcd.
type cluster struct {
	t         testing.TB
	endpoints []string
	prefix    string
	nodes     []*node
	pods      map[string]*pod
	// timeout is store.timeout: how long one call to etcd may take.
	timeout time.Duration
	port    int
	ipv6    bool
	// noFirewall runs the agents without their tunnel filter.
	noFirewall bool
	auth       *etcdAuth
}

type node struct {
	name   string
	ns     ns.NetNS
	ip     string
	dir    string
	socket string
	agent  *agent.Agent
	reg    *etcdstore.Etcd
	stop   func()
}

type pod struct {
	name   string
	ns     ns.NetNS
	node   *node
	starts int
}

// clusterOpts change a cluster's defaults.
type clusterOpts struct {
	// timeout is store.timeout: 2s by default, to keep outage tests short.
	timeout time.Duration
	// port is the VXLAN port: 4789 by default.
	port int
	// ipv6 puts the tunnels on the LAN's IPv6 addresses.
	ipv6 bool
	// noFirewall runs the agents without their tunnel filter.
	noFirewall bool
	// auth: etcd has auth on (etcdtest.StartEmbeddedEtcdAuth); each node's
	// agent is its own user, with etcdstore.GrantNode's role, through
	// root.
	auth *etcdAuth
}

// etcdAuth is an etcd with auth on: its TLS files and a root client.
type etcdAuth struct {
	files etcdtest.TLSFiles
	root  *clientv3.Client
}

// newCluster starts nodes on etcd at endpoints.
func newCluster(t testing.TB, nodes int, endpoints []string, opts ...clusterOpts) *cluster {
	t.Helper()
	c := &cluster{t: t, endpoints: endpoints, prefix: "/" + strings.ReplaceAll(t.Name(), "/", "_"), pods: map[string]*pod{}, timeout: 2 * time.Second, port: 4789}
	for _, o := range opts {
		if o.timeout != 0 {
			c.timeout = o.timeout
		}
		if o.port != 0 {
			c.port = o.port
		}
		c.ipv6 = c.ipv6 || o.ipv6
		c.noFirewall = c.noFirewall || o.noFirewall
		if o.auth != nil {
			c.auth = o.auth
		}
	}
	var all []ns.NetNS
	for i := range nodes {
		n := &node{name: fmt.Sprintf("node%d", i+1), ns: testutil.NewNS(t), ip: fmt.Sprintf("192.0.2.%d", i+1),
			dir: t.TempDir(), socket: filepath.Join(t.TempDir(), "ratchetd.sock")}
		all = append(all, n.ns)
		c.nodes = append(c.nodes, n)
		t.Cleanup(func() { testutil.RemoveParking(n.dir) })
	}
	testutil.LAN(t, all...)
	for _, n := range c.nodes {
		c.startAgent(n)
	}
	return c
}

// startAgent runs n's agent in this process, acting on n's namespace.
func (c *cluster) startAgent(n *node) {
	c.t.Helper()
	ecfg := etcdstore.Config{Endpoints: c.endpoints, Prefix: c.prefix, Timeout: c.timeout, Insecure: c.auth == nil}
	if c.auth != nil {
		if err := etcdstore.GrantNode(context.Background(), c.auth.root, c.prefix, n.name); err != nil {
			c.t.Fatal(err)
		}
		ecfg.CA = c.auth.files.CA
		ecfg.Cert, ecfg.Key = etcdtest.ClientCertFor(c.t, c.auth.files, n.name)
	}
	reg, err := etcdstore.Open(ecfg)
	if err != nil {
		c.t.Fatal(err)
	}
	var vtep net.IP
	if c.ipv6 {
		vtep = net.ParseIP(strings.Replace(n.ip, "192.0.2.", "2001:db8:ffff::", 1))
	}
	a, err := agent.New(agent.Config{
		Node: n.name, Prefix: c.prefix, NodeNS: n.ns, Port: c.port, VtepIP: vtep,
		StoreDir: n.dir, Socket: n.socket, Resync: 2 * time.Second, CallTimeout: c.timeout, NoFirewall: c.noFirewall, HealthInterval: 500 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(testWriter{c.t, n.name}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, reg)
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		if err := a.Run(ctx, func() { close(ready) }); err != nil {
			c.t.Errorf("agent %s: %v", n.name, err)
			close(ready)
		}
	}()
	<-ready
	var once sync.Once
	n.agent, n.reg = a, reg
	n.stop = func() {
		once.Do(func() {
			cancel()
			<-done
			reg.Close()
			n.agent = nil
		})
	}
	c.t.Cleanup(n.stop)
}

// settle waits until every agent has caught up with the registry.
func (c *cluster) settle() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Twice round: what one agent did in the first round (re-register an
	// end, withdraw one) the others see in the second.
	for range 2 {
		for _, n := range c.nodes {
			if n.agent == nil {
				continue
			}
			if err := n.agent.Settle(ctx); err != nil {
				c.t.Fatalf("agent %s did not settle: %v", n.name, err)
			}
		}
	}
}

func (c *cluster) conf(n *node, annotations map[string]string) string {
	conf := map[string]any{
		"cniVersion": "1.1.0", "name": "lab", "type": "ratchet", "logLevel": "debug",
		"store": map[string]any{"type": "etcd", "dir": n.dir, "endpoints": c.endpoints, "insecure": true, "prefix": c.prefix,
			"agentSocket": n.socket, "timeout": c.timeout.String()},
		"node":          map[string]any{"name": n.name},
		"vxlan":         map[string]any{"port": c.port},
		"capabilities":  map[string]any{"io.kubernetes.cri.pod-annotations": true},
		"runtimeConfig": map[string]any{"io.kubernetes.cri.pod-annotations": annotations},
	}
	b, _ := json.Marshal(conf)
	return string(b)
}

// exec runs the plugin on node n for pod p, as a runtime there does.
func (c *cluster) exec(cmd string, n *node, p *pod, annotations map[string]string) ([]byte, *types.Error) {
	c.t.Helper()
	out, cniErr, err := c.run(cmd, n, p, annotations)
	if err != nil {
		c.t.Fatal(err)
	}
	return out, cniErr
}

// run is exec for any goroutine: a failure that is not a CNI error is err.
func (c *cluster) run(cmd string, n *node, p *pod, annotations map[string]string) ([]byte, *types.Error, error) {
	netns := ""
	if p.ns != nil {
		netns = p.ns.Path()
	}
	x := exec.Command("nsenter", "--net="+n.ns.Path(), pluginBin)
	x.Env = []string{"PATH=" + os.Getenv("PATH"), "CNI_COMMAND=" + cmd,
		"CNI_CONTAINERID=" + fmt.Sprintf("sandbox-%s-%d", p.name, p.starts), "CNI_NETNS=" + netns, "CNI_IFNAME=eth0",
		"CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=lab;K8S_POD_NAME=" + p.name, "CNI_PATH=" + filepath.Dir(pluginBin)}
	x.Stdin = strings.NewReader(c.conf(n, annotations))
	var stdout, stderr bytes.Buffer
	x.Stdout, x.Stderr = &stdout, &stderr
	if err := x.Run(); err != nil {
		cniErr := &types.Error{}
		if jerr := json.Unmarshal(stdout.Bytes(), cniErr); jerr != nil || cniErr.Code == 0 {
			return nil, nil, fmt.Errorf("%s %s failed without a CNI error: %v\nstdout: %s\nstderr: %s", cmd, p.name, err, stdout.String(), stderr.String())
		}
		return nil, cniErr, nil
	}
	return stdout.Bytes(), nil, nil
}

// add starts pod name on node n (a fresh netns) and runs ADD.
func (c *cluster) add(name string, n *node, annotations map[string]string) *pod {
	c.t.Helper()
	p := c.start(name, n)
	if _, err := c.exec("ADD", n, p, annotations); err != nil {
		c.t.Fatalf("ADD %s on %s: %v", name, n.name, err)
	}
	return p
}

// start makes pod name's netns on n, as a runtime does before ADD.
func (c *cluster) start(name string, n *node) *pod {
	p := c.pods[name]
	if p == nil {
		p = &pod{name: name}
		c.pods[name] = p
	}
	p.starts++
	p.node, p.ns = n, testutil.NewNS(c.t)
	return p
}

// del runs DEL for pod name on its node and removes its netns.
func (c *cluster) del(name string) {
	c.t.Helper()
	p := c.pods[name]
	if _, err := c.exec("DEL", p.node, p, nil); err != nil {
		c.t.Fatalf("DEL %s: %v", name, err)
	}
	p.ns.Close()
	_ = testutils.UnmountNS(p.ns)
	p.ns = nil
}

func linksJSON(links ...map[string]any) map[string]string {
	b, _ := json.Marshal(links)
	return map[string]string{"ratchet.cni.dev/links": string(b)}
}

func podLink(name, ip, peer, peerIf string) map[string]any {
	return map[string]any{"name": name, "ips": []string{ip}, "peer": map[string]any{"pod": peer, "name": peerIf}}
}

// tunnels lists the tunnel netdevs in node n's parking namespace.
func (c *cluster) tunnels(n *node) map[string]int {
	c.t.Helper()
	path := testutil.ParkingPath(n.dir)
	out := map[string]int{}
	if path == "" {
		return out
	}
	park, err := ns.GetNS(path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer park.Close()
	all, err := testutil.Handle(c.t, park).LinkList()
	if err != nil {
		c.t.Fatal(err)
	}
	for _, l := range all {
		if l.Type() == "vxlan" {
			out[l.Attrs().Name] = l.Attrs().Index
		}
	}
	return out
}

// ifindex returns the index and MTU of pod p's interface name.
func ifindex(t *testing.T, p *pod, name string) (index, mtu int, up bool) {
	t.Helper()
	l, err := testutil.Handle(t, p.ns).LinkByName(name)
	if err != nil {
		t.Fatalf("%s in %s: %v", name, p.name, err)
	}
	return l.Attrs().Index, l.Attrs().MTU, l.Attrs().RawFlags&0x10000 != 0 // IFF_LOWER_UP
}

// testWriter sends an agent's log to the test's log.
type testWriter struct {
	t    testing.TB
	name string
}

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s: %s", w.name, bytes.TrimSpace(p))
	return len(p), nil
}
