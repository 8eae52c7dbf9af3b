package plugin_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// No annotation chooses the pod IP (issue 13 item 3). Runtimes report a
// result's IPs as the pod's (CRI-O every IP, containerd CNI_IFNAME's), so
// an annotation link never takes CNI_IFNAME, and its addresses stay out of
// the result's ips, chained or first. Its interface is still listed.
func TestAnnotationLinksChooseNoPodIP(t *testing.T) {
	v6 := linksJSON(t, podLink("e1", "2001:db8::1/64", "r2", "w1"))
	resultOf := func(t *testing.T, out []byte) *current.Result {
		t.Helper()
		r, err := current.NewResultFromResult(mustResult(t, out))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	names := func(r *current.Result) []string {
		var n []string
		for _, i := range r.Interfaces {
			n = append(n, i.Name)
		}
		return n
	}
	addrs := func(r *current.Result) []string {
		var a []string
		for _, ip := range r.IPs {
			a = append(a, ip.Address.String())
		}
		return a
	}
	t.Run("first plugin", func(t *testing.T) {
		e := newPodEnv(t)
		e.starts["r1"]++
		e.pods["r1"] = testutil.NewNS(t)
		r := resultOf(t, mustRun(t, e.call("ADD", "r1", v6)))
		if !slices.Equal(names(r), []string{"e1"}) || len(r.IPs) != 0 || len(r.Routes) != 0 {
			t.Fatalf("result: interfaces %v, IPs %v, routes %v; want e1 listed with no IP", names(r), addrs(r), r.Routes)
		}
		// The address is on the interface all the same.
		got, err := testutil.Handle(t, e.pods["r1"]).AddrList(mustLink(t, e.pods["r1"], "e1"), unix.AF_INET6)
		if err != nil || !slices.ContainsFunc(got, func(a netlink.Addr) bool { return a.IPNet.String() == "2001:db8::1/64" }) {
			t.Fatalf("e1 has %v (%v), want 2001:db8::1/64", got, err)
		}
		e.del("r1")
		e.expectEmpty()
	})
	t.Run("chained after an IPv4 main plugin", func(t *testing.T) {
		e := newPodEnv(t)
		e.extra = map[string]any{"prevResult": map[string]any{"cniVersion": "1.0.0",
			"interfaces": []any{map[string]any{"name": "eth0", "sandbox": "/x"}},
			"ips":        []any{map[string]any{"interface": 0, "address": "198.51.100.5/24", "gateway": "198.51.100.1"}}}}
		e.starts["r1"]++
		e.pods["r1"] = testutil.NewNS(t)
		r := resultOf(t, mustRun(t, e.call("ADD", "r1", v6)))
		if !slices.Equal(addrs(r), []string{"198.51.100.5/24"}) || !slices.Equal(names(r), []string{"eth0", "e1"}) {
			t.Fatalf("chained result: interfaces %v, IPs %v; want the main plugin's IP only", names(r), addrs(r))
		}
		e.del("r1")
		e.expectEmpty()
	})
	t.Run("CNI_IFNAME in first-plugin mode", func(t *testing.T) {
		e := newPodEnv(t)
		e.starts["r1"]++
		e.pods["r1"] = testutil.NewNS(t)
		_, cniErr := run(t, e.call("ADD", "r1", linksJSON(t, podLink("eth0", "2001:db8::1/64", "r2", "w1"))))
		if cniErr == nil || cniErr.Code != types.ErrInvalidNetworkConfig ||
			!strings.Contains(cniErr.Msg, "ratchet.cni.dev/links") || !strings.Contains(cniErr.Msg, `"eth0"`) {
			t.Fatalf("annotation link named CNI_IFNAME: %v, want code 7 naming the annotation and eth0", cniErr)
		}
		noLinks(t, e.pods["r1"])
		if l, p, a := e.records(); l+p+a != 0 {
			t.Fatalf("records left: %d links, %d pods, %d attachments", l, p, a)
		}
	})
}
