package plugin_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// legacyPrimary is a Ratchet primary's annotations: its end local, the
// pair's end pairIf with pairIP, in pod pair.
func legacyPrimary(pair, local, localIP, pairIf, pairIP string) map[string]string {
	return map[string]string{"ratchet": "true", "ratchet.primary": "true", "ratchet.pair_name": pair,
		"ratchet.local_ifname": local, "ratchet.local_ip": localIP, "ratchet.pair_ifname": pairIf, "ratchet.pair_ip": pairIP}
}

// TestLegacyKeysNeedOptIn: without "legacyKeys": true in the network config
// any of Ratchet's keys is refused with code 7 naming it, and nothing is
// made; with it, Ratchet's example pair that does not name its primary is
// refused, naming ratchet.pair_name.
func TestLegacyKeysNeedOptIn(t *testing.T) {
	e := newPodEnv(t)
	try := func(pod string, ann map[string]string, want ...string) {
		t.Helper()
		e.starts[pod]++
		e.pods[pod] = testutil.NewNS(t)
		_, cniErr := run(t, e.call("ADD", pod, ann))
		if cniErr == nil || cniErr.Code != 7 {
			t.Fatalf("ADD of %s with %v: %v, want code 7", pod, ann, cniErr)
		}
		for _, w := range want {
			if !strings.Contains(cniErr.Msg, w) {
				t.Fatalf("ADD of %s: %q does not mention %q", pod, cniErr.Msg, w)
			}
		}
		if got := e.links(pod); len(got) != 0 {
			t.Fatalf("refused ADD of %s left %v", pod, got)
		}
	}
	try("victim", map[string]string{"ratchet": "true"}, `annotation ratchet "true"`, "legacyKeys")
	try("attacker", legacyPrimary("victim", "a1", "192.0.2.1", "x1", "192.0.2.2/1"), "annotation ratchet ", "legacyKeys")
	try("pod", map[string]string{"ratchet.pair_ip": "192.0.2.2"}, "annotation ratchet.pair_ip", "legacyKeys")
	e.extra = map[string]any{"legacyKeys": true}
	try("pair-pod", map[string]string{"ratchet": "true", "ratchet.pod_name": "pair-pod", "ratchet.primary": "false"}, "ratchet.pair_name")
	if l, p, a := e.records(); l+p+a != 0 {
		t.Fatalf("refused ADDs left records: %d links, %d pods, %d attachments", l, p, a)
	}
}

// TestLegacyPairConsentsOnlyToItsPrimary: a pod that is a Ratchet pair of
// "friend" gets friend's link, and never the interface (with its address
// and connected route) that another primary declares towards it, in
// either order of their ADDs and across the victim's restart.
func TestLegacyPairConsentsOnlyToItsPrimary(t *testing.T) {
	attacker := legacyPrimary("victim", "a1", "192.0.2.1", "x1", "192.0.2.66/1")
	friend := legacyPrimary("victim", "f1", "198.51.100.1", "v1", "198.51.100.2")
	victim := map[string]string{"ratchet": "true", "ratchet.pod_name": "victim", "ratchet.pair_name": "friend"}
	for name, order := range map[string][]string{
		"attacker first": {"attacker", "friend", "victim"},
		"victim first":   {"victim", "friend", "attacker"},
	} {
		t.Run(name, func(t *testing.T) {
			e := newPodEnv(t)
			e.extra = map[string]any{"legacyKeys": true}
			ann := map[string]map[string]string{"attacker": attacker, "friend": friend, "victim": victim}
			for _, pod := range order {
				e.add(pod, ann[pod])
			}
			expect := func(when string) {
				t.Helper()
				if got := e.links("victim"); !slices.Equal(got, []string{"v1"}) {
					t.Fatalf("%s: the victim holds %v, want [v1] only", when, got)
				}
				if up, _ := e.carrier("attacker", "a1"); up {
					t.Fatalf("%s: the attacker's a1 has carrier", when)
				}
				testutil.MustPing(t, e.pods["friend"], "198.51.100.2")
				mustRun(t, e.call("CHECK", "victim", victim))
			}
			expect("after every ADD")
			e.del("victim")
			e.add("victim", victim)
			expect("after the victim's restart")
			for _, pod := range order {
				e.del(pod)
			}
			e.expectEmpty()
		})
	}
}

// TestLegacyPairInterfaceTaken: a primary's ratchet.pair_ifname that is the
// pair's CNI_IFNAME, one of the pair's own links, or an interface the pair
// already has, is never made (nor does it block the pair): the link stays
// pending, both ADDs succeed, and the pair's own interfaces are untouched.
func TestLegacyPairInterfaceTaken(t *testing.T) {
	pairOwn := linksJSON(t, podLink("e1", "203.0.113.1/24", "r3", "w1"))
	for name, pairIf := range map[string]string{"CNI_IFNAME": "eth0", "own link": "e1", "existing": "d1"} {
		for _, primaryFirst := range []bool{true, false} {
			t.Run(name+map[bool]string{true: " primary first", false: " pair first"}[primaryFirst], func(t *testing.T) {
				e := newPodEnv(t)
				e.extra = map[string]any{"legacyKeys": true}
				primary := legacyPrimary("pair", "in1", "192.0.2.1", pairIf, "192.0.2.2/1")
				pair := map[string]string{"ratchet": "true", "ratchet.pair_name": "primary"}
				for k, v := range pairOwn {
					pair[k] = v
				}
				addPair := func() {
					t.Helper()
					e.starts["pair"]++
					e.pods["pair"] = testutil.NewNS(t)
					if err := testutil.Handle(t, e.pods["pair"]).LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "d1"}, PeerName: "d1p"}); err != nil {
						t.Fatal(err)
					}
					mustRun(t, e.call("ADD", "pair", pair))
				}
				if primaryFirst {
					e.add("primary", primary)
					addPair()
				} else {
					addPair()
					e.add("primary", primary)
				}
				if got := e.links("pair"); !slices.Equal(got, []string{"d1", "d1p", "e1"}) {
					t.Fatalf("the pair holds %v, want [d1 d1p e1]", got)
				}
				addrs, err := testutil.Handle(t, e.pods["pair"]).AddrList(nil, unix.AF_INET)
				if err != nil {
					t.Fatal(err)
				}
				for _, a := range addrs {
					if a.IP.String() == "192.0.2.2" {
						t.Fatalf("the primary's address for the pair was added to %s", mustIndex(t, e.pods["pair"], a.LinkIndex))
					}
				}
				if up, _ := e.carrier("primary", "in1"); up {
					t.Fatal("the primary's in1 has carrier: its link was completed")
				}
				mustRun(t, e.call("CHECK", "pair", pair))
				mustRun(t, e.call("CHECK", "primary", primary))
				e.del("pair")
				addPair()
				if got := e.links("pair"); !slices.Equal(got, []string{"d1", "d1p", "e1"}) {
					t.Fatalf("after a restart the pair holds %v, want [d1 d1p e1]", got)
				}
				e.del("primary")
				e.del("pair")
				e.expectEmpty()
			})
		}
	}
}

// TestForeignDeclarationKeepsMyLinks: pod c declaring a link to a's e1
// (which a links to b) changes nothing of a's: a's CHECK passes, a's DEL
// unplugs b, a comes back linked to b, c's link stays pending throughout
// and nothing of c's appears in a.
func TestForeignDeclarationKeepsMyLinks(t *testing.T) {
	e := newPodEnv(t)
	annA := linksJSON(t, podLink("e1", "192.0.2.1/24", "b", "w1"))
	annB := linksJSON(t, podLink("w1", "192.0.2.2/24", "a", "e1"))
	annC := linksJSON(t, podLink("x1", "198.51.100.1/24", "a", "e1"))
	e.add("a", annA)
	e.add("b", annB)
	testutil.MustPing(t, e.pods["a"], "192.0.2.2")
	e.add("c", annC)
	expectA := func(when string) {
		t.Helper()
		if got := e.links("a"); !slices.Equal(got, []string{"e1"}) {
			t.Fatalf("%s: a holds %v, want [e1]", when, got)
		}
		if up, _ := e.carrier("c", "x1"); up {
			t.Fatalf("%s: c's x1 has carrier", when)
		}
	}
	expectA("after c's ADD")
	mustRun(t, e.call("CHECK", "a", annA))
	testutil.MustPing(t, e.pods["a"], "192.0.2.2")
	e.del("a")
	if up, _ := e.carrier("b", "w1"); up {
		t.Fatal("b's w1 keeps carrier after a's DEL: a's DEL missed its link to b")
	}
	if up, _ := e.carrier("c", "x1"); up {
		t.Fatal("c's x1 has carrier after a's DEL")
	}
	e.add("a", annA)
	expectA("after a came back")
	testutil.MustPing(t, e.pods["a"], "192.0.2.2")
	mustRun(t, e.call("CHECK", "a", annA))
	mustRun(t, e.call("CHECK", "c", annC)) // pending is not an error
	e.del("a")
	e.del("b")
	e.del("c")
	e.expectEmpty()
}

func mustIndex(t testing.TB, n ns.NetNS, index int) string {
	t.Helper()
	l, err := testutil.Handle(t, n).LinkByIndex(index)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Name
}
