package plugin_test

import (
	"os/exec"
	"strings"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/types/create"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// TestDefaultMTU: a static link whose spec sets no MTU is made with its
// kind's default, the result reports it, and CHECK fails once the
// interface's MTU differs from it.
func TestDefaultMTU(t *testing.T) {
	for _, tc := range []struct {
		name string
		// link returns the link and the namespace and interface the
		// drift is made on.
		link    func(t *testing.T, pod, nodeA, nodeB ns.NetNS) (map[string]any, ns.NetNS, string)
		wantMTU int
	}{
		{"veth", func(t *testing.T, pod, _, nodeB ns.NetNS) (map[string]any, ns.NetNS, string) {
			return vethTo("in1", "192.0.2.1/24", nodeB, "in2", "192.0.2.2/24"), pod, "in1"
		}, 1500},
		{"veth peer end", func(t *testing.T, pod, _, nodeB ns.NetNS) (map[string]any, ns.NetNS, string) {
			return vethTo("in1", "192.0.2.1/24", nodeB, "in2", "192.0.2.2/24"), nodeB, "in2"
		}, 1500},
		{"vxlan", func(t *testing.T, pod, nodeA, nodeB ns.NetNS) (map[string]any, ns.NetNS, string) {
			testutil.Underlay(t, nodeA, nodeB, "underlay0")
			return map[string]any{"name": "vx0", "ips": []string{"203.0.113.1/24"},
				"vxlan": map[string]any{"remote": "192.0.2.2", "vni": 5001}}, pod, "vx0"
		}, 1500 - 50},
		{"macvlan", func(t *testing.T, pod, nodeA, nodeB ns.NetNS) (map[string]any, ns.NetNS, string) {
			testutil.Underlay(t, nodeA, nodeB, "underlay0")
			return map[string]any{"name": "mv0", "ips": []string{"203.0.113.1/24"},
				"macvlan": map[string]any{"master": "underlay0"}}, pod, "mv0"
		}, 1500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod, nodeA, nodeB := testutil.NewNS(t), testutil.NewNS(t), testutil.NewNS(t)
			l, driftNS, driftIf := tc.link(t, pod, nodeA, nodeB)
			c := call{cmd: "ADD", netns: pod.Path(), node: nodeA,
				conf: confJSON(t, "1.1.0", t.TempDir(), map[string]any{"links": []any{l}})}
			out := mustRun(t, c)
			t.Cleanup(func() { c.cmd = "DEL"; _, _ = run(t, c) })
			versioned, err := create.Create("1.1.0", out)
			if err != nil {
				t.Fatal(err)
			}
			res, err := current.NewResultFromResult(versioned)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Interfaces) != 1 || res.Interfaces[0].Mtu != tc.wantMTU {
				t.Fatalf("result interfaces %+v, want one with mtu %d: %s", res.Interfaces, tc.wantMTU, out)
			}
			c.cmd = "CHECK"
			mustRun(t, c)
			drift := []string{"--net=" + driftNS.Path(), "ip", "link", "set", driftIf, "mtu", "1400"}
			if out, err := exec.Command("nsenter", drift...).CombinedOutput(); err != nil {
				t.Fatalf("%v: %v %s", drift, err, out)
			}
			_, cniErr := run(t, c)
			if cniErr == nil || cniErr.Code != netconf.ErrCheckFailed || !strings.Contains(cniErr.Msg, "MTU is 1400") || !strings.Contains(cniErr.Msg, driftIf) {
				t.Fatalf("CHECK after %s's MTU changed from the default: %v; want code %d naming %s and the MTU", driftIf, cniErr, netconf.ErrCheckFailed, driftIf)
			}
		})
	}
}

// TestPodLinkResultMTU: a pod link without an MTU is made with the veth
// default, which the result reports.
func TestPodLinkResultMTU(t *testing.T) {
	e := newPodEnv(t)
	e.add("r2", linksJSON(t, podLink("w1", "192.0.2.2/24", "r1", "e1")))
	e.starts["r1"]++
	e.pods["r1"] = testutil.NewNS(t)
	out := mustRun(t, e.call("ADD", "r1", linksJSON(t, podLink("e1", "192.0.2.1/24", "r2", "w1"))))
	t.Cleanup(func() { e.del("r1"); e.del("r2") })
	versioned, err := create.Create("1.0.0", out)
	if err != nil {
		t.Fatal(err)
	}
	res, err := current.NewResultFromResult(versioned)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Interfaces) != 1 || res.Interfaces[0].Name != "e1" || res.Interfaces[0].Mtu != 1500 {
		t.Fatalf("result interfaces %+v, want e1 with mtu 1500: %s", res.Interfaces, out)
	}
}
