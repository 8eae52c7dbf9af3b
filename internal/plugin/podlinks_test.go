package plugin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ratchet-cni/ratchet/internal/parking"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// podEnv is a node with pods that declare links in annotations, driven as
// containerd's CRI drives the plugin: CNI_ARGS with K8S_POD_*, annotations
// in runtimeConfig.
type podEnv struct {
	t      *testing.T
	dir    string
	pods   map[string]ns.NetNS
	extra  map[string]any
	starts map[string]int
}

func newPodEnv(t *testing.T) *podEnv {
	e := &podEnv{t: t, dir: t.TempDir(), pods: map[string]ns.NetNS{}, starts: map[string]int{}}
	t.Cleanup(func() { testutil.RemoveParking(e.dir) })
	return e
}

func (e *podEnv) parking() ns.NetNS {
	path := testutil.ParkingPath(e.dir)
	n, err := ns.GetNS(path)
	if err != nil {
		e.t.Fatalf("parking netns %q: %v", path, err)
	}
	e.t.Cleanup(func() { n.Close() })
	return n
}

func (e *podEnv) call(cmd, pod string, annotations map[string]string) call {
	fields := map[string]any{
		"capabilities":  map[string]any{"io.kubernetes.cri.pod-annotations": true},
		"runtimeConfig": map[string]any{"io.kubernetes.cri.pod-annotations": annotations},
	}
	for k, v := range e.extra {
		fields[k] = v
	}
	c := call{cmd: cmd, containerID: fmt.Sprintf("sandbox-%s-%d", pod, e.starts[pod]),
		args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=lab;K8S_POD_NAME=" + pod + ";K8S_POD_UID=uid-" + pod,
		conf: confJSON(e.t, "1.0.0", e.dir, fields)}
	if n, ok := e.pods[pod]; ok {
		c.netns = n.Path()
	}
	return c
}

// add starts pod (a fresh netns) and runs ADD.
func (e *podEnv) add(pod string, annotations map[string]string) {
	e.t.Helper()
	e.starts[pod]++
	e.pods[pod] = testutil.NewNS(e.t)
	mustRun(e.t, e.call("ADD", pod, annotations))
}

// del runs DEL for pod and removes its netns, as a runtime does.
func (e *podEnv) del(pod string) {
	e.t.Helper()
	mustRun(e.t, e.call("DEL", pod, nil))
	n := e.pods[pod]
	n.Close()
	_ = testutils.UnmountNS(n)
	delete(e.pods, pod)
}

func linksJSON(t testing.TB, links ...map[string]any) map[string]string {
	b, err := json.Marshal(links)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"ratchet.cni.dev/links": string(b)}
}

func podLink(name, ip, peer, peerIf string) map[string]any {
	return map[string]any{"name": name, "ips": []string{ip}, "peer": map[string]any{"pod": peer, "name": peerIf}}
}

// line is r1 -e1--w1- r2 -e1--w1- r3.
func line(t testing.TB) map[string]map[string]string {
	return map[string]map[string]string{
		"r1": linksJSON(t, podLink("e1", "192.0.2.1/24", "r2", "w1")),
		"r2": linksJSON(t, podLink("w1", "192.0.2.2/24", "r1", "e1"), podLink("e1", "198.51.100.1/24", "r3", "w1")),
		"r3": linksJSON(t, podLink("w1", "198.51.100.2/24", "r2", "e1")),
	}
}

func (e *podEnv) links(pod string) []string {
	got := testutil.Links(e.t, e.pods[pod])
	slices.Sort(got)
	return got
}

func (e *podEnv) carrier(pod, ifname string) (bool, int) {
	l, err := testutil.Handle(e.t, e.pods[pod]).LinkByName(ifname)
	if err != nil {
		e.t.Fatalf("%s:%s: %v", pod, ifname, err)
	}
	return l.Attrs().RawFlags&unix.IFF_LOWER_UP != 0, l.Attrs().Index
}

func (e *podEnv) records() (links, pods, attachments int) {
	st, err := store.OpenLocal(e.dir)
	if err != nil {
		e.t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	l, _ := st.Links(ctx)
	p, _ := st.Pods(ctx)
	a, _ := st.Attachments(ctx, "")
	return len(l), len(p), len(a)
}

func (e *podEnv) expectEmpty() {
	e.t.Helper()
	for pod := range e.pods {
		if got := e.links(pod); len(got) != 0 {
			e.t.Fatalf("%s still holds %v", pod, got)
		}
	}
	if got := testutil.Links(e.t, e.parking()); len(got) != 0 {
		e.t.Fatalf("parking still holds %v", got)
	}
	if l, p, a := e.records(); l+p+a != 0 {
		e.t.Fatalf("records left: %d links, %d pods, %d attachments", l, p, a)
	}
}

func TestPodLinkLineEveryOrder(t *testing.T) {
	for _, order := range [][]string{
		{"r1", "r2", "r3"}, {"r1", "r3", "r2"}, {"r2", "r1", "r3"},
		{"r2", "r3", "r1"}, {"r3", "r1", "r2"}, {"r3", "r2", "r1"},
	} {
		t.Run(strings.Join(order, "-"), func(t *testing.T) {
			e, ann := newPodEnv(t), line(t)
			want := map[string][]string{"r1": {"e1"}, "r2": {"e1", "w1"}, "r3": {"w1"}}
			for _, pod := range order {
				e.add(pod, ann[pod])
				// Its interfaces exist as soon as its ADD returns.
				if got := e.links(pod); !slices.Equal(got, want[pod]) {
					t.Fatalf("after ADD of %s it holds %v, want %v", pod, got, want[pod])
				}
			}
			testutil.MustPing(t, e.pods["r1"], "192.0.2.2")
			testutil.MustPing(t, e.pods["r3"], "198.51.100.1")
			mustRun(t, e.call("CHECK", "r2", ann["r2"]))
			for _, pod := range order {
				e.del(pod)
			}
			e.expectEmpty()
		})
	}
}

// A plugin run in a mount namespace of its own (as `ip netns exec` runs
// its command) cannot pin the parking namespace for the next run: the ADD
// says so, and leaves nothing, rather than making interfaces that vanish
// with the process.
func TestParkingRefusedInPrivateMountNamespace(t *testing.T) {
	e := newPodEnv(t)
	e.starts["r1"]++
	e.pods["r1"] = testutil.NewNS(t)
	c := e.call("ADD", "r1", linksJSON(t, podLink("e1", "192.0.2.1/24", "r2", "w1")))
	c.wrap = []string{"unshare", "--mount", "--propagation", "slave"}
	_, cniErr := run(t, c)
	if cniErr == nil || cniErr.Code != 101 || !strings.Contains(cniErr.Msg, "mount namespace of its own") {
		t.Fatalf("ADD in a private mount namespace: %v, want code 101 saying why", cniErr)
	}
	noLinks(t, e.pods["r1"])
	name := parking.Name(e.dir)
	if _, err := os.Stat(filepath.Join("/var/run/netns", name)); err == nil {
		t.Fatalf("%s left behind", name)
	}
	// The same ADD from the host's mount namespace works.
	mustRun(t, e.call("ADD", "r1", linksJSON(t, podLink("e1", "192.0.2.1/24", "r2", "w1"))))
}

func TestPodLinkNeedsBothSides(t *testing.T) {
	e := newPodEnv(t)
	e.add("r1", linksJSON(t, podLink("e1", "192.0.2.1/24", "r2", "w1")))
	e.add("r2", nil) // declares nothing: consents to nothing
	if got := e.links("r2"); len(got) != 0 {
		t.Fatalf("a link declared by r1 alone was forced into r2: %v", got)
	}
	if up, _ := e.carrier("r1", "e1"); up {
		t.Fatal("r1's e1 has carrier with no peer")
	}
	mustRun(t, e.call("CHECK", "r1", linksJSON(t, podLink("e1", "192.0.2.1/24", "r2", "w1")))) // pending is not an error
	e.del("r1")
	e.del("r2")
	e.expectEmpty()
}

func TestPodRestartKeepsPeersInterfaces(t *testing.T) {
	e, ann := newPodEnv(t), line(t)
	for _, pod := range []string{"r1", "r2", "r3"} {
		e.add(pod, ann[pod])
	}
	_, idx1 := e.carrier("r1", "e1")
	_, idx3 := e.carrier("r3", "w1")
	macBefore := mustLink(t, e.pods["r2"], "e1").Attrs().HardwareAddr.String()
	e.del("r2")
	for _, c := range []struct{ pod, ifname string }{{"r1", "e1"}, {"r3", "w1"}} {
		up, idx := e.carrier(c.pod, c.ifname)
		if up {
			t.Fatalf("%s:%s keeps carrier while r2 is gone", c.pod, c.ifname)
		}
		if (c.pod == "r1" && idx != idx1) || (c.pod == "r3" && idx != idx3) {
			t.Fatalf("%s:%s changed ifindex", c.pod, c.ifname)
		}
	}
	e.add("r2", ann["r2"])
	// Same MAC as before the restart, or the neighbours' ARP entries would
	// point at the old one for up to a minute.
	if mac := mustLink(t, e.pods["r2"], "e1").Attrs().HardwareAddr.String(); mac != macBefore {
		t.Fatalf("r2:e1 came back with MAC %s, was %s", mac, macBefore)
	}
	testutil.MustPing(t, e.pods["r1"], "192.0.2.2")
	testutil.MustPing(t, e.pods["r3"], "198.51.100.1")
	if up, idx := e.carrier("r1", "e1"); !up || idx != idx1 {
		t.Fatalf("r1:e1 after r2 came back: carrier %v, ifindex %d (was %d)", up, idx, idx1)
	}
	for _, pod := range []string{"r1", "r2", "r3"} {
		e.del(pod)
	}
	e.expectEmpty()
}

func TestPodLinkGCWithNoValidAttachments(t *testing.T) {
	e, ann := newPodEnv(t), line(t)
	for _, pod := range []string{"r1", "r2", "r3"} {
		e.add(pod, ann[pod])
	}
	gc := e.call("GC", "r1", nil)
	gc.conf = confJSON(t, "1.1.0", e.dir, map[string]any{"cni.dev/valid-attachments": []any{}})
	mustRun(t, gc)
	e.expectEmpty()
}

func TestPodLinkHostileAnnotations(t *testing.T) {
	e := newPodEnv(t)
	for name, ann := range map[string]string{
		"peer.netns":     `[{"name":"e1","peer":{"netns":"/proc/1/ns/net"}}]`,
		"vxlan":          `[{"name":"e1","vxlan":{"remote":"192.0.2.9","vni":5}}]`,
		"macvlan":        `[{"name":"e1","macvlan":{"master":"eth0"}}]`,
		"malformed":      `[{"name":"e1",`,
		"not an array":   `{"name":"e1"}`,
		"unknown field":  `[{"name":"e1","peer":{"pod":"r2","name":"w1"},"store":{"dir":"/"}}]`,
		"cross-ns":       `[{"name":"e1","peer":{"pod":"r2","namespace":"other","name":"w1"}}]`,
		"self":           `[{"name":"e1","peer":{"pod":"r1","name":"w1"}}]`,
		"no peer name":   `[{"name":"e1","peer":{"pod":"r2"}}]`,
		"bad ip":         `[{"name":"e1","ips":["10.0.0.1"],"peer":{"pod":"r2","name":"w1"}}]`,
		"too many links": `[` + strings.Repeat(`{"name":"x","peer":{"pod":"r2","name":"w1"}},`, 1100) + `{}]`,
		"id separators":  `[{"name":"x~y|z","peer":{"pod":"r2","name":"w1"}}]`,
		"peer separator": `[{"name":"e1","peer":{"pod":"r2","name":"w|1"}}]`,
	} {
		t.Run(name, func(t *testing.T) {
			e.starts["r1"]++
			e.pods["r1"] = testutil.NewNS(t)
			_, cniErr := run(t, e.call("ADD", "r1", map[string]string{"ratchet.cni.dev/links": ann}))
			if cniErr == nil || cniErr.Code != 7 || !strings.Contains(cniErr.Msg, "ratchet.cni.dev/links") {
				t.Fatalf("got %v, want code 7 naming the annotation", cniErr)
			}
			if got := e.links("r1"); len(got) != 0 {
				t.Fatalf("rejected ADD left %v", got)
			}
		})
	}
	if l, p, a := e.records(); l+p+a != 0 {
		t.Fatalf("rejected ADDs left records: %d links, %d pods, %d attachments", l, p, a)
	}
}

func TestCrossNamespaceWhenAllowed(t *testing.T) {
	e := newPodEnv(t)
	e.extra = map[string]any{"allowCrossNamespace": true}
	e.add("r1", linksJSON(t, map[string]any{"name": "e1", "ips": []string{"192.0.2.1/24"}, "peer": map[string]any{"pod": "r2", "namespace": "lab", "name": "w1"}}))
	e.add("r2", linksJSON(t, podLink("w1", "192.0.2.2/24", "r1", "e1")))
	testutil.MustPing(t, e.pods["r1"], "192.0.2.2")
	e.del("r1")
	e.del("r2")
	e.expectEmpty()
}

// TestLegacyKeys: Ratchet's primary declares both ends; the pair consents
// with ratchet: "true" and the primary's name in ratchet.pair_name (as
// Ratchet's example pair does once it names its primary); a bare IP means
// /24. Either may start first.
func TestLegacyKeys(t *testing.T) {
	primary := map[string]string{
		"ratchet": "true", "ratchet.pod_name": "primary-pod", "ratchet.primary": "true",
		"ratchet.local_ip": "192.0.2.100", "ratchet.local_ifname": "in1",
		"ratchet.pair_name": "pair-pod", "ratchet.pair_ip": "192.0.2.101", "ratchet.pair_ifname": "in2",
	}
	pair := map[string]string{"ratchet": "true", "ratchet.pod_name": "pair-pod", "ratchet.primary": "false", "ratchet.pair_name": "primary-pod"}
	for _, first := range []string{"primary-pod", "pair-pod"} {
		t.Run(first+" first", func(t *testing.T) {
			e := newPodEnv(t)
			e.extra = map[string]any{"legacyKeys": true}
			ann := map[string]map[string]string{"primary-pod": primary, "pair-pod": pair}
			second := map[string]string{"primary-pod": "pair-pod", "pair-pod": "primary-pod"}[first]
			e.add(first, ann[first])
			e.add(second, ann[second])
			if got := e.links("pair-pod"); !slices.Equal(got, []string{"in2"}) {
				t.Fatalf("pair holds %v", got)
			}
			addrs, err := testutil.Handle(t, e.pods["pair-pod"]).AddrList(mustLink(t, e.pods["pair-pod"], "in2"), unix.AF_INET)
			if err != nil || len(addrs) != 1 || addrs[0].IPNet.String() != "192.0.2.101/24" {
				t.Fatalf("pair's in2 addresses %v %v, want 192.0.2.101/24", addrs, err)
			}
			testutil.MustPing(t, e.pods["primary-pod"], "192.0.2.101")
			e.del("primary-pod")
			e.del("pair-pod")
			e.expectEmpty()
		})
	}
}

func mustLink(t testing.TB, n ns.NetNS, name string) netlink.Link {
	t.Helper()
	l, err := testutil.Handle(t, n).LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestPodLinkInNetworkConfig: a peer.pod link may come from the network
// config too (one network attachment per pod, as with Multus).
func TestPodLinkInNetworkConfig(t *testing.T) {
	e := newPodEnv(t)
	e.pods["r1"], e.pods["r2"] = testutil.NewNS(t), testutil.NewNS(t)
	for _, c := range []struct{ pod, name, ip, peer, peerIf string }{{"r1", "e1", "192.0.2.1/24", "r2", "w1"}, {"r2", "w1", "192.0.2.2/24", "r1", "e1"}} {
		cl := e.call("ADD", c.pod, nil)
		cl.conf = confJSON(t, "1.0.0", e.dir, map[string]any{"links": []any{podLink(c.name, c.ip, c.peer, c.peerIf)}})
		mustRun(t, cl)
	}
	testutil.MustPing(t, e.pods["r1"], "192.0.2.2")
	e.del("r1")
	e.del("r2")
	e.expectEmpty()
}
