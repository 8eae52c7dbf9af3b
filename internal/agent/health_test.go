package agent_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
	"github.com/ratchet-cni/ratchet/internal/ctl"
	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// askHealth asks the agent at socket for its health as `ratchetctl health`
// does: no node, no prefix.
func askHealth(t *testing.T, socket string) *agentapi.Health {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := agentapi.Call(ctx, socket, &agentapi.Request{Op: agentapi.OpHealth})
	if resp == nil || resp.Health == nil {
		t.Fatalf("health from %s: %v", socket, err)
	}
	if (err == nil) != resp.Health.Ready {
		t.Fatalf("health from %s: ready %v but error %v", socket, resp.Health.Ready, err)
	}
	return resp.Health
}

// waitFor polls cond until it holds or within passes.
func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// failing returns the reason of check name, "" when it passes.
func failing(h *agentapi.Health, name string) string {
	for _, c := range h.Checks {
		if c.Name == name && !c.OK {
			return c.Reason
		}
	}
	return ""
}

// wantStatus50 runs STATUS on n and wants code 50 with want in its message.
func (c *cluster) wantStatus50(t *testing.T, n *node, p *pod, want string) {
	t.Helper()
	if _, err := c.exec("STATUS", n, p, nil); err == nil || err.Code != types.ErrPluginNotAvailable || !strings.Contains(err.Msg, want) {
		t.Fatalf("STATUS: %v, want code 50 saying %q", err, want)
	}
}

// wantAdd11 runs ADD of p on n and wants code 11 with want in its message
// and nothing made in the pod.
func (c *cluster) wantAdd11(t *testing.T, n *node, p *pod, ann map[string]string, want string) {
	t.Helper()
	if _, err := c.exec("ADD", n, p, ann); err == nil || err.Code != types.ErrTryAgainLater || !strings.Contains(err.Msg, want) {
		t.Fatalf("ADD of %s: %v, want code 11 saying %q", p.name, err, want)
	}
	assertNothingIn(t, p)
}

// startPrivateAgent runs n's agent as ratchetd in a process of its own, in
// a mount namespace of its own whose mounts are all private: its view of
// /var/run/netns is a copy made now, which mounts made later on the host
// (the plugin's pin of the parking namespace) do not reach. This is the
// DaemonSet's ratchetd on a node whose /run is not a shared mount. It
// returns the agent's pid.
func (c *cluster) startPrivateAgent(t *testing.T, n *node, healthAddr string) int {
	t.Helper()
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "nsenter", "--net="+n.ns.Path(), ratchetdBin,
		"--node", n.name, "--etcd-endpoints", etcdIn(t, n.ns, c.endpoints[0]), "--etcd-insecure", "--prefix", c.prefix,
		"--timeout", c.timeout.String(), "--store-dir", n.dir, "--socket", n.socket, "--vxlan-port", fmt.Sprint(c.port),
		"--resync", "2s", "--health-interval", "300ms", "--health-addr", healthAddr, "--log-level", "debug")
	cmd.Stdout, cmd.Stderr = testWriter{t, n.name}, testWriter{t, n.name}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	waitFor(t, "ratchetd answers on its socket", 20*time.Second, func() bool {
		_, err := agentapi.Call(context.Background(), n.socket, &agentapi.Request{Op: agentapi.OpHealth})
		select {
		case <-done:
			t.Fatal("ratchetd exited")
		default:
		}
		return err == nil || !strings.Contains(err.Error(), agentapi.ErrUnreachable.Error())
	})
	return cmd.Process.Pid
}

// etcdIn makes etcd at endpoint (on this process's loopback) reachable
// from netns n, on n's loopback, and returns the endpoint there: a process
// that runs in n (as ratchetd runs in the node's namespace) sees only n's.
func etcdIn(t *testing.T, n ns.NetNS, endpoint string) string {
	t.Helper()
	target := strings.TrimPrefix(endpoint, "http://")
	var ln net.Listener
	if err := n.Do(func(ns.NetNS) (err error) {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer in.Close()
				out, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer out.Close()
				go func() {
					_, _ = io.Copy(out, in)
					out.(*net.TCPConn).CloseWrite()
				}()
				_, _ = io.Copy(in, out)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// getIn GETs url from inside netns n (the agent's health endpoint is on
// the node's loopback) and returns the status code and body.
func getIn(t *testing.T, n ns.NetNS, url string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (conn net.Conn, err error) {
			err = n.Do(func(ns.NetNS) error {
				conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return conn, err
		}}}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// The case: ratchetd's /var/run/netns does not receive the host's
// later mounts, so the parking namespace the plugin makes after ratchetd
// started shows to it as the bare file under the pin. The agent says so
// (not ready, in its health, /readyz and STATUS), refuses the ADD of a pod
// whose peer is on another node (11) while links on the node still work,
// and once the pin is mounted in its view, everything recovers without a
// restart.
func TestHealthPrivateNetnsMount(t *testing.T) {
	c := newCluster(t, 2, startEtcd(t))
	n1, n2 := c.nodes[0], c.nodes[1]
	n1.stop()
	// The node's loopback, for /readyz.
	if err := testutil.Handle(t, n1.ns).LinkSetUp(mustLink(t, n1.ns, "lo")); err != nil {
		t.Fatal(err)
	}
	const addr = "127.0.0.1:9099"
	pid := c.startPrivateAgent(t, n1, addr)
	if h := askHealth(t, n1.socket); !h.Ready {
		t.Fatalf("an agent on a node with no parking namespace yet is not ready: %s", h.Reason())
	}

	// Two pods linked on node1: the plugin makes the parking namespace,
	// which the agent cannot see.
	c.add("c", n1, linksJSON(podLink("e1", "203.0.113.1/24", "d", "w1")))
	d := c.add("d", n1, linksJSON(podLink("w1", "203.0.113.2/24", "c", "e1")))
	var h *agentapi.Health
	waitFor(t, "the agent reports the parking namespace", 10*time.Second, func() bool {
		h = askHealth(t, n1.socket)
		return failing(h, "parking") != ""
	})
	reason := failing(h, "parking")
	for _, want := range []string{testutil.ParkingPath(n1.dir), "private mount", "mountPropagation: HostToContainer"} {
		if !strings.Contains(reason, want) {
			t.Errorf("the reason %q does not say %q", reason, want)
		}
	}
	code, body := getIn(t, n1.ns, "http://"+addr+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "parking") || !strings.Contains(body, "private mount") {
		t.Errorf("/readyz: %d %q, want 503 with the reason", code, body)
	}
	if code, body := getIn(t, n1.ns, "http://"+addr+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d %q, want 200: a restart is not the fix", code, body)
	}
	c.wantStatus50(t, n1, d, "parking")
	// Links on the node need no tunnel, and work.
	testutil.MustPing(t, d.ns, "203.0.113.1")

	annA, annB := pair()
	b := c.add("b", n2, annB)
	a := c.start("a", n1)
	c.wantAdd11(t, n1, a, annA, "node2")

	// In the agent's view, another namespace at the path (a stale pin):
	// it opens, but it is not the plugin's, and the identity tells.
	inAgent := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("nsenter", append([]string{fmt.Sprintf("--mount=/proc/%d/ns/mnt", pid)}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("%q in the agent's mount namespace: %v: %s", args, err, out)
		}
	}
	pin := testutil.ParkingPath(n1.dir)
	inAgent("mount", "--no-canonicalize", "--bind", n2.ns.Path(), pin)
	waitFor(t, "the agent reports a stale pin", 10*time.Second, func() bool {
		return strings.Contains(failing(askHealth(t, n1.socket), "parking"), "but the plugin made namespace")
	})
	c.wantAdd11(t, n1, a, annA, "stale pin")
	inAgent("umount", pin)

	// The fix, made without restarting the agent: the pin, mounted in its
	// view. (On a real node: the volume's propagation, then a restart.)
	park := parkingOf(t, n1)
	inAgent("mount", "--no-canonicalize", "--bind", fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), park.Fd()), pin)
	waitFor(t, "the agent is ready again", 10*time.Second, func() bool { return askHealth(t, n1.socket).Ready })
	if code, body := getIn(t, n1.ns, "http://"+addr+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after the fix: %d %q", code, body)
	}
	if _, err := c.exec("STATUS", n1, a, nil); err != nil {
		t.Fatalf("STATUS after the fix: %v", err)
	}
	if _, err := c.exec("ADD", n1, a, annA); err != nil {
		t.Fatalf("ADD after the fix: %v", err)
	}
	waitFor(t, "a reaches b across nodes", 20*time.Second, func() bool { return testutil.Ping(a.ns, "198.51.100.2") == nil })
	testutil.MustPing(t, b.ns, "198.51.100.1")
}

func mustLink(t *testing.T, n ns.NetNS, name string) netlink.Link {
	t.Helper()
	l, err := testutil.Handle(t, n).LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// etcd gone for longer than store.timeout: the agent says not ready with
// the reason, STATUS answers 50, a cross-node ADD 11; when etcd is back,
// all of it recovers on its own.
func TestHealthEtcdUnreachable(t *testing.T) {
	etcd := startEtcdProcess(t)
	c := newCluster(t, 2, etcd.endpoints)
	n1, n2 := c.nodes[0], c.nodes[1]
	annA, annB := pair()
	b := c.add("b", n2, annB)
	c.settle()

	etcd.stop()
	waitFor(t, "the agent reports etcd", c.timeout+10*time.Second, func() bool {
		return failing(ptr(n1.agent.Health()), "etcd") != ""
	})
	if h := askHealth(t, n1.socket); h.Ready || !strings.Contains(failing(h, "etcd"), "does not answer within "+c.timeout.String()) {
		t.Fatalf("health with etcd down: %+v", h)
	}
	var stdout, stderr strings.Builder
	if code := ctl.Main([]string{"health", "--socket", n1.socket}, &stdout, &stderr); code != 1 ||
		!strings.Contains(stdout.String(), "etcd       FAILING since") || !strings.Contains(stderr.String(), "not ready: etcd: the cluster store does not answer") {
		t.Errorf("ratchetctl health with etcd down: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	if code := ctl.Main([]string{"health", "--live", "--socket", n1.socket}, &stdout, &stderr); code != 0 {
		t.Errorf("ratchetctl health --live with etcd down: exit %d, want 0: a restart does not bring etcd back", code)
	}
	a := c.start("a", n1)
	c.wantStatus50(t, n1, a, "etcd")
	c.wantAdd11(t, n1, a, annA, "etcd")

	etcd.start()
	waitFor(t, "the agent is ready again", 30*time.Second, func() bool { return askHealth(t, n1.socket).Ready })
	if _, err := c.exec("STATUS", n1, a, nil); err != nil {
		t.Fatalf("STATUS with etcd back: %v", err)
	}
	stdout.Reset()
	if code := ctl.Main([]string{"health", "--socket", n1.socket}, &stdout, &stderr); code != 0 || !strings.HasSuffix(stdout.String(), "ready\n") {
		t.Errorf("ratchetctl health with etcd back: exit %d\n%s", code, stdout.String())
	}
	if _, err := c.exec("ADD", n1, a, annA); err != nil {
		t.Fatalf("ADD with etcd back: %v", err)
	}
	c.settle()
	testutil.MustPing(t, a.ns, "198.51.100.2")
	testutil.MustPing(t, b.ns, "198.51.100.1")
}

func ptr[T any](v T) *T { return &v }

// A tunnel that cannot be made: something else holds the VXLAN port on
// node1's underlay. Each pass fails; after ReconcileFailures in a row the
// agent says not ready with the kernel's reason, STATUS answers 50 and the
// ADD of another cross-node pod 11. When the port is free, the next pass
// makes the tunnel and the agent is ready again.
func TestHealthReconcileFailsRepeatedly(t *testing.T) {
	c := newCluster(t, 2, startEtcd(t), clusterOpts{port: 4790})
	n1, n2 := c.nodes[0], c.nodes[1]
	var sock *net.UDPConn
	if err := n1.ns.Do(func(ns.NetNS) (err error) {
		sock, err = net.ListenUDP("udp", &net.UDPAddr{Port: c.port})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer sock.Close()

	annA, annB := pair()
	b := c.add("b", n2, annB)
	a := c.add("a", n1, annA) // its peer is registered: the tunnel is wanted now
	var h *agentapi.Health
	waitFor(t, "the agent reports its failing passes", 30*time.Second, func() bool {
		h = ptr(n1.agent.Health())
		return failing(h, "reconcile") != ""
	})
	if r := failing(h, "reconcile"); !strings.Contains(r, "reconcile passes failed") || !strings.Contains(r, "address already in use") {
		t.Errorf("reason %q does not say what fails", r)
	}
	if !h.Live {
		t.Error("an agent whose passes fail is not stuck: it must stay live")
	}
	// Another cross-node pod: x on node1, y on node2.
	y := c.add("y", n2, linksJSON(podLink("w2", "203.0.113.2/24", "x", "e2")))
	x := c.start("x", n1)
	c.wantStatus50(t, n1, x, "reconcile")
	c.wantAdd11(t, n1, x, linksJSON(podLink("e2", "203.0.113.1/24", "y", "w2")), "reconcile")

	sock.Close()
	waitFor(t, "the agent is ready again", 30*time.Second, func() bool { return askHealth(t, n1.socket).Ready })
	c.add("x", n1, linksJSON(podLink("e2", "203.0.113.1/24", "y", "w2")))
	c.settle()
	testutil.MustPing(t, a.ns, "198.51.100.2")
	testutil.MustPing(t, b.ns, "198.51.100.1")
	testutil.MustPing(t, y.ns, "203.0.113.1")
}
