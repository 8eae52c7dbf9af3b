package plugin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/types/create"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"

	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/internal/plugin"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// records counts the attachments recorded in a store directory.
func records(t testing.TB, dir string) int {
	t.Helper()
	st, err := store.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	all, err := st.Attachments(context.Background(), "lab")
	if err != nil {
		t.Fatal(err)
	}
	return len(all)
}

func noLinks(t testing.TB, namespaces ...ns.NetNS) {
	t.Helper()
	for _, n := range namespaces {
		if left := testutil.Links(t, n); len(left) != 0 {
			t.Fatalf("%s still holds %v", n.Path(), left)
		}
	}
}

func TestAddCheckDelEveryVersion(t *testing.T) {
	for _, v := range []string{"0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			pod, peer, dir := testutil.NewNS(t), testutil.NewNS(t), t.TempDir()
			l := vethTo("in1", "192.0.2.1/24", peer, "in2", "192.0.2.2/24")
			l["ips"] = []string{"192.0.2.1/24", "2001:db8::1/64"}
			l["peer"].(map[string]any)["ips"] = []string{"192.0.2.2/24", "2001:db8::2/64"}
			l["mtu"] = 1400
			conf := confJSON(t, v, dir, map[string]any{"links": []any{l}})
			c := call{cmd: "ADD", netns: pod.Path(), conf: conf}
			out := mustRun(t, c)

			var printed struct{ CNIVersion string }
			if err := json.Unmarshal(out, &printed); err != nil || printed.CNIVersion != v {
				t.Fatalf("result version %q (%v), want %s: %s", printed.CNIVersion, err, v, out)
			}
			versioned, err := create.Create(v, out)
			if err != nil {
				t.Fatalf("parse %s result: %v\n%s", v, err, out)
			}
			res, err := current.NewResultFromResult(versioned)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.IPs) == 0 || res.IPs[0].Address.String() != "192.0.2.1/24" {
				t.Fatalf("result IPs %v, want 192.0.2.1/24 first", res.IPs)
			}
			if v >= "0.3.0" {
				if len(res.Interfaces) != 1 || res.Interfaces[0].Name != "in1" || res.Interfaces[0].Sandbox != pod.Path() || res.Interfaces[0].Mac == "" {
					t.Fatalf("result interfaces %+v", res.Interfaces)
				}
				if len(res.IPs) != 2 || *res.IPs[1].Interface != 0 {
					t.Fatalf("result IPs %+v, want both addresses on interface 0", res.IPs)
				}
			}
			testutil.MustPing(t, pod, "192.0.2.2")
			testutil.MustPing(t, pod, "2001:db8::2")
			if v >= "0.4.0" {
				c.cmd = "CHECK"
				mustRun(t, c)
			}
			c.cmd = "DEL"
			mustRun(t, c)
			noLinks(t, pod, peer)
			if n := records(t, dir); n != 0 {
				t.Fatalf("%d records left after DEL", n)
			}
		})
	}
}

// TestNoLinksEveryVersion: standalone with no links, ADD returns a valid
// empty result in every spec version.
func TestNoLinksEveryVersion(t *testing.T) {
	pod, dir := testutil.NewNS(t), t.TempDir()
	for _, v := range []string{"0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		out := mustRun(t, call{cmd: "ADD", netns: pod.Path(), conf: confJSON(t, v, dir, nil)})
		if _, err := create.Create(v, out); err != nil {
			t.Errorf("%s: %v\n%s", v, err, out)
		}
		var printed struct{ CNIVersion string }
		if err := json.Unmarshal(out, &printed); err != nil || printed.CNIVersion != v {
			t.Errorf("%s: printed %s", v, out)
		}
	}
}

func TestDelIsIdempotent(t *testing.T) {
	setup := func(t *testing.T) (pod, peer ns.NetNS, c call, dir string) {
		pod, peer, dir = testutil.NewNS(t), testutil.NewNS(t), t.TempDir()
		conf := confJSON(t, "1.0.0", dir, map[string]any{"links": []any{vethTo("in1", "192.0.2.1/24", peer, "in2", "192.0.2.2/24")}})
		c = call{cmd: "ADD", netns: pod.Path(), conf: conf}
		mustRun(t, c)
		c.cmd = "DEL"
		return pod, peer, c, dir
	}
	t.Run("twice", func(t *testing.T) {
		pod, peer, c, dir := setup(t)
		mustRun(t, c)
		mustRun(t, c)
		noLinks(t, pod, peer)
		if records(t, dir) != 0 {
			t.Fatal("record left")
		}
	})
	t.Run("empty CNI_NETNS uses the recorded namespace", func(t *testing.T) {
		pod, peer, c, dir := setup(t)
		c.netns = ""
		mustRun(t, c)
		noLinks(t, pod, peer)
		if records(t, dir) != 0 {
			t.Fatal("record left")
		}
	})
	t.Run("namespace already gone", func(t *testing.T) {
		pod, peer, c, dir := setup(t)
		pod.Close()
		if err := testutils.UnmountNS(pod); err != nil {
			t.Fatal(err)
		}
		mustRun(t, c)
		// The kernel tears a namespace down in the background; the veth
		// pair goes with it.
		for i := 0; i < 100 && len(testutil.Links(t, peer)) > 0; i++ {
			time.Sleep(20 * time.Millisecond)
		}
		noLinks(t, peer)
		if records(t, dir) != 0 {
			t.Fatal("record left")
		}
	})
	t.Run("empty CNI_NETNS after the recorded path died (ctr)", func(t *testing.T) {
		// ctr records /proc/PID/ns/net and sends DEL with an empty CNI_NETNS
		// after that process is gone; the namespace may live on (here: held
		// by its bind mount), and so would both ends but for the peer side.
		pod, peer, dir := testutil.NewNS(t), testutil.NewNS(t), t.TempDir()
		sleeper := exec.Command("nsenter", "--net="+pod.Path(), "sleep", "60")
		if err := sleeper.Start(); err != nil {
			t.Fatal(err)
		}
		testutil.WaitInNS(t, sleeper.Process.Pid, pod)
		conf := confJSON(t, "1.0.0", dir, map[string]any{"links": []any{vethTo("in1", "192.0.2.1/24", peer, "in2", "192.0.2.2/24")}})
		mustRun(t, call{cmd: "ADD", netns: fmt.Sprintf("/proc/%d/ns/net", sleeper.Process.Pid), conf: conf})
		_ = sleeper.Process.Kill()
		_ = sleeper.Wait()
		mustRun(t, call{cmd: "DEL", conf: conf})
		noLinks(t, pod, peer)
	})
	t.Run("never added, no prevResult", func(t *testing.T) {
		pod, dir := testutil.NewNS(t), t.TempDir()
		mustRun(t, call{cmd: "DEL", containerID: "never", netns: pod.Path(), conf: confJSON(t, "1.0.0", dir, nil)})
		mustRun(t, call{cmd: "DEL", containerID: "never", conf: confJSON(t, "1.0.0", dir, nil)})
	})
}

func TestCheckDetectsDrift(t *testing.T) {
	cases := []struct {
		name  string
		drift string // an ip(8) command run in the pod
		want  string
	}{
		{"deleted", "ip link del in1", "missing"},
		{"down", "ip link set in1 down", "down"},
		{"readdressed", "ip addr flush dev in1", "address 192.0.2.1/24"},
		{"wrong MTU", "ip link set in1 mtu 1300", "MTU"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod, peer := testutil.NewNS(t), testutil.NewNS(t)
			l := vethTo("in1", "192.0.2.1/24", peer, "in2", "192.0.2.2/24")
			l["mtu"] = 1400
			c := call{cmd: "ADD", netns: pod.Path(), conf: confJSON(t, "1.0.0", t.TempDir(), map[string]any{"links": []any{l}})}
			mustRun(t, c)
			c.cmd = "CHECK"
			mustRun(t, c)
			if out, err := exec.Command("nsenter", append([]string{"--net=" + pod.Path()}, strings.Fields(tc.drift)...)...).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v %s", tc.drift, err, out)
			}
			_, cniErr := run(t, c)
			if cniErr == nil || cniErr.Code != netconf.ErrCheckFailed || !strings.Contains(cniErr.Msg, tc.want) {
				t.Fatalf("CHECK after %q: %v; want code %d mentioning %q", tc.drift, cniErr, netconf.ErrCheckFailed, tc.want)
			}
		})
	}
	t.Run("wrong VNI", func(t *testing.T) {
		nodeA, nodeB, pod := testutil.NewNS(t), testutil.NewNS(t), testutil.NewNS(t)
		testutil.Underlay(t, nodeA, nodeB, "underlay0")
		dir := t.TempDir()
		vx := func(vni int) string {
			return confJSON(t, "1.0.0", dir, map[string]any{"links": []any{map[string]any{
				"name": "vx0", "ips": []string{"203.0.113.1/24"}, "vxlan": map[string]any{"remote": "192.0.2.2", "vni": vni}}}})
		}
		mustRun(t, call{cmd: "ADD", netns: pod.Path(), conf: vx(5001), node: nodeA})
		mustRun(t, call{cmd: "CHECK", netns: pod.Path(), conf: vx(5001), node: nodeA})
		_, cniErr := run(t, call{cmd: "CHECK", netns: pod.Path(), conf: vx(5002), node: nodeA})
		if cniErr == nil || cniErr.Code != netconf.ErrCheckFailed || !strings.Contains(cniErr.Msg, "VNI") {
			t.Fatalf("CHECK with another VNI: %v", cniErr)
		}
	})
}

// TestTraffic sends IPv4 and IPv6 over a veth link and over a vxlan link
// between two simulated nodes, each end made by the plugin run "on" its node.
func TestTraffic(t *testing.T) {
	t.Run("veth", func(t *testing.T) {
		pod, peer := testutil.NewNS(t), testutil.NewNS(t)
		l := vethTo("in1", "192.0.2.1/24", peer, "in2", "192.0.2.2/24")
		l["ips"] = []string{"192.0.2.1/24", "2001:db8::1/64"}
		l["peer"].(map[string]any)["ips"] = []string{"192.0.2.2/24", "2001:db8::2/64"}
		mustRun(t, call{cmd: "ADD", netns: pod.Path(), conf: confJSON(t, "1.0.0", t.TempDir(), map[string]any{"links": []any{l}})})
		testutil.MustPing(t, pod, "192.0.2.2")
		testutil.MustPing(t, pod, "2001:db8::2")
		testutil.MustPing(t, peer, "2001:db8::1")
	})
	t.Run("vxlan across nodes", func(t *testing.T) {
		nodeA, nodeB := testutil.NewNS(t), testutil.NewNS(t)
		testutil.Underlay(t, nodeA, nodeB, "underlay0")
		podA, podB := testutil.NewNS(t), testutil.NewNS(t)
		tunnel := func(v4, v6, remote string) string {
			return confJSON(t, "1.0.0", t.TempDir(), map[string]any{
				"node":  map[string]any{"vtepDev": "underlay0"},
				"vxlan": map[string]any{"port": 4790},
				"links": []any{map[string]any{"name": "vx0", "ips": []string{v4, v6},
					"vxlan": map[string]any{"remote": remote, "vni": 7001}}}})
		}
		mustRun(t, call{cmd: "ADD", netns: podA.Path(), conf: tunnel("203.0.113.1/24", "2001:db8:1::1/64", "192.0.2.2"), node: nodeA})
		mustRun(t, call{cmd: "ADD", netns: podB.Path(), conf: tunnel("203.0.113.2/24", "2001:db8:1::2/64", "192.0.2.1"), node: nodeB})
		testutil.MustPing(t, podA, "203.0.113.2")
		testutil.MustPing(t, podA, "2001:db8:1::2")
		if got := testutil.Links(t, nodeA); !slices.Equal(got, []string{"underlay0"}) {
			t.Fatalf("node A holds %v; the tunnel end belongs in the pod", got)
		}
	})
}

// kindsOnNode is a config with one link of each static kind, for a pod on
// a simulated node whose underlay0 is both vxlan underlay and macvlan master.
func kindsOnNode(t testing.TB, dir string, peer ns.NetNS) string {
	return confJSON(t, "1.0.0", dir, map[string]any{"links": []any{
		vethTo("in1", "192.0.2.1/24", peer, "in2", "192.0.2.2/24"),
		map[string]any{"name": "vx0", "ips": []string{"203.0.113.1/24", "2001:db8:1::1/64"}, "mtu": 1400,
			"routes": []any{map[string]any{"dst": "198.51.100.0/24", "gw": "203.0.113.2"}},
			"vxlan":  map[string]any{"remote": "192.0.2.2", "vni": 42}},
		map[string]any{"name": "mv0", "ips": []string{"192.0.2.101/24"}, "macvlan": map[string]any{"master": "underlay0"}},
	}})
}

func TestEveryStaticKindOnANode(t *testing.T) {
	node, other, pod, peer := testutil.NewNS(t), testutil.NewNS(t), testutil.NewNS(t), testutil.NewNS(t)
	testutil.Underlay(t, node, other, "underlay0")
	c := call{cmd: "ADD", netns: pod.Path(), conf: kindsOnNode(t, t.TempDir(), peer), node: node}
	res, err := current.NewResultFromResult(mustResult(t, mustRun(t, c)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range res.Interfaces {
		names = append(names, i.Name)
	}
	if !slices.Equal(names, []string{"in1", "vx0", "mv0"}) || len(res.IPs) != 4 || len(res.Routes) != 1 {
		t.Fatalf("result: interfaces %v, %d IPs, %d routes", names, len(res.IPs), len(res.Routes))
	}
	testutil.MustPing(t, pod, "192.0.2.2") // over the macvlan, out through the node's underlay
	c.cmd = "CHECK"
	mustRun(t, c)
	c.cmd = "DEL"
	mustRun(t, c)
	noLinks(t, pod, peer)
}

func mustResult(t testing.TB, out []byte) types.Result {
	t.Helper()
	r, err := create.CreateFromBytes(out)
	if err != nil {
		t.Fatalf("parse result: %v\n%s", err, out)
	}
	return r
}

// TestAddFailureLeavesNothing fails ADD after each of its steps in turn and
// checks that the pod, the peer namespace, the node and the store are as
// before.
func TestAddFailureLeavesNothing(t *testing.T) {
	node, other := testutil.NewNS(t), testutil.NewNS(t)
	testutil.Underlay(t, node, other, "underlay0")
	injected := errors.New("injected failure")
	steps := 0
	for k := 1; ; k++ {
		pod, peer, dir := testutil.NewNS(t), testutil.NewNS(t), t.TempDir()
		args := &skel.CmdArgs{ContainerID: "ctr1", Netns: pod.Path(), IfName: "eth0", StdinData: []byte(kindsOnNode(t, dir, peer))}
		calls := 0
		hook := func(step string) error {
			if calls++; calls == k {
				return fmt.Errorf("%w after step %d (%s)", injected, k, step)
			}
			return nil
		}
		_, _, err := (&plugin.Plugin{HostNS: node, Fault: hook}).AddResult(context.Background(), args)
		if calls < k {
			if err != nil {
				t.Fatal(err)
			}
			steps = k - 1
			break
		}
		if err == nil || !strings.Contains(err.Error(), injected.Error()) {
			t.Fatalf("step %d: got %v, want the injected failure", k, err)
		}
		noLinks(t, pod, peer)
		if got := testutil.Links(t, node); !slices.Equal(got, []string{"underlay0"}) {
			t.Fatalf("failure after step %d left %v on the node", k, got)
		}
		if n := records(t, dir); n != 0 {
			t.Fatalf("failure after step %d left %d records", k, n)
		}
	}
	// record + 3 links x (create, marker, addresses, routes, netem) + the
	// veth peer's 4 + result
	if steps != 21 {
		t.Fatalf("ADD went through %d steps, want 21: a step was added or lost", steps)
	}
}

func TestAddRefusesTakenName(t *testing.T) {
	pod, peer, dir := testutil.NewNS(t), testutil.NewNS(t), t.TempDir()
	if out, err := exec.Command("ip", "-n", nsName(pod), "link", "add", "in2", "type", "veth", "peer", "name", "other").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	conf := confJSON(t, "1.0.0", dir, map[string]any{"links": []any{
		vethTo("in1", "192.0.2.1/24", peer, "p1", "192.0.2.2/24"),
		vethTo("in2", "198.51.100.1/24", peer, "p2", "198.51.100.2/24"),
	}})
	_, cniErr := run(t, call{cmd: "ADD", netns: pod.Path(), conf: conf})
	if cniErr == nil || cniErr.Code != netconf.ErrLinkExists || !strings.Contains(cniErr.Msg, `"in2"`) {
		t.Fatalf("got %v, want code %d naming in2", cniErr, netconf.ErrLinkExists)
	}
	if got := testutil.Links(t, pod); !slices.Equal(got, []string{"other", "in2"}) && !slices.Equal(got, []string{"in2", "other"}) {
		t.Fatalf("pod holds %v: in1 was not undone, or the existing pair was touched", got)
	}
	noLinks(t, peer)
	if records(t, dir) != 0 {
		t.Fatal("record left")
	}
}

func nsName(n ns.NetNS) string {
	return n.Path()[strings.LastIndex(n.Path(), "/")+1:]
}

func TestGC(t *testing.T) {
	dir, peer := t.TempDir(), testutil.NewNS(t)
	pods := map[string]ns.NetNS{"ctr1": testutil.NewNS(t), "ctr2": testutil.NewNS(t), "ctr3": testutil.NewNS(t)}
	for i, id := range []string{"ctr1", "ctr2", "ctr3"} {
		conf := confJSON(t, "1.1.0", dir, map[string]any{"links": []any{
			vethTo("in1", fmt.Sprintf("192.0.2.%d/24", i+1), peer, fmt.Sprintf("p%d", i+1), fmt.Sprintf("192.0.2.%d/24", i+101))}})
		mustRun(t, call{cmd: "ADD", containerID: id, netns: pods[id].Path(), conf: conf})
	}
	gc := func(key string, valid ...string) {
		var list []any
		for _, id := range valid {
			list = append(list, map[string]any{"containerID": id, "ifname": "eth0"})
		}
		mustRun(t, call{cmd: "GC", conf: confJSON(t, "1.1.0", dir, map[string]any{key: list})})
	}
	gc("cni.dev/valid-attachments", "ctr1", "ctr3")
	noLinks(t, pods["ctr2"])
	if got := testutil.Links(t, pods["ctr1"]); !slices.Equal(got, []string{"in1"}) {
		t.Fatalf("valid attachment ctr1 lost its link: %v", got)
	}
	if n := records(t, dir); n != 2 {
		t.Fatalf("%d records after GC, want 2", n)
	}
	gc("cni.dev/attachments", "ctr3") // the pre-1.1 key
	noLinks(t, pods["ctr1"])
	gc("cni.dev/valid-attachments")
	noLinks(t, pods["ctr1"], pods["ctr2"], pods["ctr3"], peer)
	if n := records(t, dir); n != 0 {
		t.Fatalf("%d records after GC of everything", n)
	}
}

func TestStatus(t *testing.T) {
	mustRun(t, call{cmd: "STATUS", conf: confJSON(t, "1.1.0", t.TempDir(), nil)})
	file := t.TempDir() + "/not-a-dir"
	if out, err := exec.Command("touch", file).CombinedOutput(); err != nil {
		t.Fatal(err, string(out))
	}
	_, cniErr := run(t, call{cmd: "STATUS", conf: confJSON(t, "1.1.0", file, nil)})
	if cniErr == nil || cniErr.Code != types.ErrPluginNotAvailable {
		t.Fatalf("STATUS with an unusable store: %v, want code 50", cniErr)
	}
}

func TestVersion(t *testing.T) {
	out := mustRun(t, call{cmd: "VERSION", conf: `{"cniVersion":"1.1.0"}`})
	var info struct{ SupportedVersions []string }
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		if !slices.Contains(info.SupportedVersions, v) {
			t.Errorf("VERSION does not list %s: %s", v, out)
		}
	}
}

// TestChainedAfterPtp runs ratchet after the reference ptp plugin, through
// libcni as a runtime would: ratchet passes ptp's result through, appends
// its own interface, and never touches eth0.
func TestChainedAfterPtp(t *testing.T) {
	node, pod, peer, dir := testutil.NewNS(t), testutil.NewNS(t), testutil.NewNS(t), t.TempDir()
	list := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"lab","plugins":[
	  {"type":"ptp","ipMasq":false,"ipam":{"type":"host-local","subnet":"198.51.100.0/24","dataDir":%q}},
	  {"type":"ratchet","store":{"dir":%q},"links":[{"name":"in1","ips":["192.0.2.1/24"],"peer":{"netns":%q,"name":"in2","ips":["192.0.2.2/24"]}}]}]}`,
		dir+"/ipam", dir+"/ratchet", peer.Path())
	conf, err := libcni.ConfListFromBytes([]byte(list))
	if err != nil {
		t.Fatal(err)
	}
	cni := libcni.NewCNIConfigWithCacheDir([]string{binDir}, dir+"/cache", nil)
	rt := &libcni.RuntimeConf{ContainerID: "chained", NetNS: pod.Path(), IfName: "eth0"}
	ctx := context.Background()
	var res types.Result
	// ptp puts its host end in the namespace it runs in: a simulated node.
	err = node.Do(func(ns.NetNS) error {
		var err error
		res, err = cni.AddNetworkList(ctx, conf, rt)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// CHECK ratchet with the chain's result as prevResult. (libcni's
	// CheckNetworkList would also run ptp's CHECK, which wrongly expects
	// every IP of the final result on its own eth0; see README.)
	var final map[string]any
	raw, _ := json.Marshal(res)
	_ = json.Unmarshal(raw, &final)
	mustRun(t, call{cmd: "CHECK", containerID: "chained", netns: pod.Path(), conf: confJSON(t, "1.0.0", dir+"/ratchet", map[string]any{
		"prevResult": final,
		"links":      []any{vethTo("in1", "192.0.2.1/24", peer, "in2", "192.0.2.2/24")}})})
	r, err := current.NewResultFromResult(res)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range r.Interfaces {
		names = append(names, i.Name)
	}
	if !slices.Contains(names, "eth0") || names[len(names)-1] != "in1" {
		t.Fatalf("chained result interfaces %v: want ptp's, with in1 appended", names)
	}
	var addrs []string
	for _, ip := range r.IPs {
		addrs = append(addrs, ip.Address.String())
	}
	if len(addrs) != 2 || !strings.HasPrefix(addrs[0], "198.51.100.") || addrs[1] != "192.0.2.1/24" {
		t.Fatalf("chained result IPs %v", addrs)
	}
	if got := testutil.Links(t, pod); !slices.Contains(got, "eth0") || !slices.Contains(got, "in1") {
		t.Fatalf("pod holds %v, want ptp's eth0 and ratchet's in1", got)
	}
	testutil.MustPing(t, pod, "192.0.2.2")
	if err := node.Do(func(ns.NetNS) error { return cni.DelNetworkList(ctx, conf, rt) }); err != nil {
		t.Fatal(err)
	}
	noLinks(t, pod, peer)
}

func TestLogFile(t *testing.T) {
	pod, peer, dir := testutil.NewNS(t), testutil.NewNS(t), t.TempDir()
	logFile := dir + "/ratchet.log"
	conf := confJSON(t, "1.0.0", dir, map[string]any{"logFile": logFile, "logLevel": "info",
		"links": []any{vethTo("in1", "192.0.2.1/24", peer, "in2", "192.0.2.2/24")}})
	mustRun(t, call{cmd: "ADD", netns: pod.Path(), conf: conf})
	mustRun(t, call{cmd: "DEL", netns: pod.Path(), conf: conf})
	logged, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`msg="ADD done"`, `msg="DEL done"`, "container=ctr1"} {
		if !strings.Contains(string(logged), want) {
			t.Errorf("log file lacks %s:\n%s", want, logged)
		}
	}
	if fi, err := os.Stat(logFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("log file mode %v %v, want 0600", fi.Mode().Perm(), err)
	}
}
