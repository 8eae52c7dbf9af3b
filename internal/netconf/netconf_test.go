package netconf_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	// The kind units register the peer kinds netconf decodes.
	_ "github.com/ratchet-cni/ratchet/internal/kind"
	"github.com/ratchet-cni/ratchet/internal/linkparam"
	"github.com/ratchet-cni/ratchet/internal/netconf"
)

func TestLoadDefaults(t *testing.T) {
	conf, err := netconf.Load([]byte(`{"cniVersion":"1.0.0","name":"lab","type":"ratchet","somethingElse":{"a":1}}`), "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if conf.Store.Type != "local" || conf.Store.Dir != netconf.DefaultStoreDir || conf.MaxLinksPerPod != 128 || conf.MaxParkedEnds != 8192 ||
		conf.VXLAN.Port != 4789 || conf.VXLAN.VNIRange != "5000-16777215" || conf.LogLevel != "info" || conf.Node.Name == "" {
		t.Fatalf("defaults: %+v", conf)
	}
	if len(conf.Links) != 0 || conf.Chained {
		t.Fatalf("links %v chained %v", conf.Links, conf.Chained)
	}
}

func TestUnnamedLinkTakesIfName(t *testing.T) {
	conf, err := netconf.Load([]byte(`{"cniVersion":"1.0.0","name":"lab","links":[{"macvlan":{"master":"eth0"}}]}`), "net1")
	if err != nil {
		t.Fatal(err)
	}
	if conf.Links[0].Name != "net1" || conf.Links[0].Kind() != "macvlan" {
		t.Fatalf("link %+v", conf.Links[0])
	}
}

func TestParsedEnds(t *testing.T) {
	conf, err := netconf.Load([]byte(`{"cniVersion":"1.0.0","name":"lab","links":[{"name":"in1","ips":["192.0.2.1/24"],"mac":"02:00:00:00:00:01","mtu":9000,
	  "routes":[{"dst":"198.51.100.0/24","gw":"192.0.2.2"}],"netem":{"delay":"5ms","loss":"1%"},
	  "peer":{"netns":"red","ips":["192.0.2.2/24"]}}]}`), "eth0")
	if err != nil {
		t.Fatal(err)
	}
	l := conf.Links[0]
	local := l.Local()
	if local.Addrs[0].String() != "192.0.2.1/24" || local.MAC.String() != "02:00:00:00:00:01" || local.MTU != 9000 ||
		local.Routes[0].GW.String() != "192.0.2.2" || local.Netem.Loss != 1 {
		t.Fatalf("local end %+v", local)
	}
}

func TestAnnotationLinksMayNotNameHostResources(t *testing.T) {
	for _, raw := range []string{
		`{"name":"a","peer":{"netns":"/proc/1/ns/net"}}`,
		`{"name":"a","vxlan":{"remote":"192.0.2.1","vni":1}}`,
		`{"name":"a","macvlan":{"master":"eth0"}}`,
		`{"name":"a","vlan":{"master":"eth0","id":42}}`,
	} {
		var spec netconf.LinkSpec
		if err := json.Unmarshal([]byte(raw), &spec); err != nil {
			t.Fatal(err)
		}
		err := spec.Validate("links[0]", netconf.Annotation)
		var cniErr *types.Error
		if !errors.As(err, &cniErr) || cniErr.Code != types.ErrInvalidNetworkConfig || !strings.Contains(cniErr.Msg, "not allowed in pod annotations") {
			t.Errorf("%s from an annotation: %v", raw, err)
		}
	}
	ok := netconf.LinkSpec{Name: "a", Peer: &netconf.Peer{Pod: "r2", Name: "b"}}
	if err := ok.Validate("links[0]", netconf.Annotation); err != nil {
		t.Fatalf("pod peer from an annotation: %v", err)
	}
}

func TestCheckIfName(t *testing.T) {
	for _, good := range []string{"a", "eth0", "in-1_x.y", "123456789012345"} {
		if err := netconf.CheckIfName(good); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "1234567890123456", "a/b", "a b", "a:b", "a\tb", "a\x00b"} {
		if err := netconf.CheckIfName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseVNIRange(t *testing.T) {
	if a, b, err := netconf.ParseVNIRange("5000-16777215"); err != nil || a != 5000 || b != 16777215 {
		t.Fatalf("%d %d %v", a, b, err)
	}
	for _, bad := range []string{"", "5", "0-10", "10-5", "1-16777216", "a-b", "-1-3"} {
		if _, _, err := netconf.ParseVNIRange(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestDecodeIsLenientAboutLinks(t *testing.T) {
	// DEL must work with a config whose links ADD would now refuse.
	conf, err := netconf.Decode([]byte(`{"cniVersion":"1.0.0","name":"lab","links":[{"name":"way-too-long-name-here"}]}`))
	if err != nil || conf.Name != "lab" {
		t.Fatalf("%+v %v", conf, err)
	}
}

func TestLockTimeout(t *testing.T) {
	conf, err := netconf.Load([]byte(`{"cniVersion":"1.0.0","name":"lab","store":{"lockTimeout":"250ms"}}`), "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if got := conf.Store.LockWait(); got != 250*time.Millisecond {
		t.Fatalf("lock wait %v, want 250ms", got)
	}
	if got := (&netconf.Store{}).LockWait(); got != netconf.DefaultLockTimeout {
		t.Fatalf("default lock wait %v", got)
	}
	for _, bad := range []string{"soon", "-1s", "0s"} {
		_, err := netconf.Load([]byte(`{"cniVersion":"1.0.0","name":"lab","store":{"lockTimeout":"`+bad+`"}}`), "eth0")
		var cniErr *types.Error
		if !errors.As(err, &cniErr) || cniErr.Code != types.ErrInvalidNetworkConfig || !strings.Contains(cniErr.Msg, "store.lockTimeout") || !strings.Contains(cniErr.Msg, bad) {
			t.Errorf("lockTimeout %q: %v, want code 7 naming store.lockTimeout and the value", bad, err)
		}
	}
}

func TestLinkSpecKinds(t *testing.T) {
	for _, c := range []struct {
		raw, want string
	}{
		// A key that is no kind nor generic field is an unknown field.
		{`{"name":"a","bridge":{"master":"br0"}}`, `unknown field "bridge"`},
		// Unknown fields inside a kind's sub-object too.
		{`{"name":"a","vlan":{"master":"eth0","id":4,"qos":1}}`, `unknown field "qos"`},
		{`{"name":"a","vlan":{"master":"eth0","id":4},"macvlan":{"master":"eth0"}}`, "has 2 peer kinds; want exactly one of peer.pod, peer.netns, vxlan, macvlan, vlan"},
		{`{"name":"a","vlan":{"master":"eth0","id":4},"peer":{"netns":"red"}}`, "has 2 peer kinds"},
		{`{"name":"a"}`, "has 0 peer kinds"},
		{`{"name":"a","vlan":null}`, "has 0 peer kinds"},
	} {
		_, err := netconf.Load([]byte(`{"cniVersion":"1.0.0","name":"lab","links":[`+c.raw+`]}`), "eth0")
		var cniErr *types.Error
		if !errors.As(err, &cniErr) || cniErr.Code != types.ErrInvalidNetworkConfig || !strings.Contains(cniErr.Msg, c.want) || !strings.Contains(cniErr.Msg, "links[0]") {
			t.Errorf("%s: got %v, want code 7 saying %q", c.raw, err, c.want)
		}
	}
}

func TestLinkSpecJSONRoundTrip(t *testing.T) {
	for _, raw := range []string{
		`{"name":"a","mtu":1400,"vlan":{"master":"eth0","id":42}}`,
		`{"vxlan":{"remote":"192.0.2.1","vni":7}}`,
		`{"name":"a","peer":{"pod":"r2","name":"b"}}`,
	} {
		var spec netconf.LinkSpec
		if err := json.Unmarshal([]byte(raw), &spec); err != nil {
			t.Fatal(err)
		}
		out, err := json.Marshal(spec)
		if err != nil || string(out) != raw {
			t.Errorf("%s became %s (%v)", raw, out, err)
		}
	}
}

// One link end may carry at most linkparam.MaxAddrsPerLink addresses and
// MaxRoutesPerLink routes, from either source: an annotation with 15,000
// addresses on one link is refused with code 7 naming the field.
func TestAddressAndRouteCountsBounded(t *testing.T) {
	spec := func(nAddrs, nRoutes int) netconf.LinkSpec {
		s := netconf.LinkSpec{Name: "e1", Peer: &netconf.Peer{Pod: "r2", Name: "w1"}}
		for i := range nAddrs {
			s.IPs = append(s.IPs, fmt.Sprintf("2001:db8::%x/64", i+1))
		}
		for i := range nRoutes {
			s.Routes = append(s.Routes, netconf.RouteSpec{Dst: fmt.Sprintf("2001:db8:%x::/48", i+1)})
		}
		return s
	}
	for _, src := range []netconf.Source{netconf.Static, netconf.Annotation} {
		ok := spec(linkparam.MaxAddrsPerLink, linkparam.MaxRoutesPerLink)
		if err := ok.Validate("links[0]", src); err != nil {
			t.Fatalf("the maximum refused: %v", err)
		}
		for _, c := range []struct {
			spec  netconf.LinkSpec
			field string
		}{
			{spec(15000, 0), `links[0].ips "(15000 addresses)"`},
			{spec(linkparam.MaxAddrsPerLink+1, 0), "links[0].ips"},
			{spec(0, linkparam.MaxRoutesPerLink+1), "links[0].routes"},
		} {
			err := c.spec.Validate("links[0]", src)
			var cniErr *types.Error
			if !errors.As(err, &cniErr) || cniErr.Code != types.ErrInvalidNetworkConfig || !strings.Contains(cniErr.Msg, c.field) {
				t.Errorf("%s: %v", c.field, err)
			}
		}
	}
}

func TestPlaintextEndpoint(t *testing.T) {
	for _, c := range []struct {
		ep   string
		tls  bool
		want bool
	}{
		{"http://192.0.2.1:2379", false, true},
		{"http://192.0.2.1:2379", true, true},
		{"unix:///run/etcd.sock", false, true},
		{"192.0.2.1:2379", false, true},
		{"192.0.2.1:2379", true, false},
		{"https://192.0.2.1:2379", true, false},
		{"HTTPS://192.0.2.1:2379", true, false},
	} {
		if got := netconf.PlaintextEndpoint(c.ep, c.tls); got != c.want {
			t.Errorf("netconf.PlaintextEndpoint(%q, tls %v) = %v, want %v", c.ep, c.tls, got, c.want)
		}
	}
}

// TestPlaintextNeedsInsecure: a plaintext etcd endpoint is refused (code 7
// naming store.endpoints and the endpoint) unless store.insecure says so.
func TestPlaintextNeedsInsecure(t *testing.T) {
	const base = `{"cniVersion":"1.0.0","name":"lab","type":"ratchet","store":{"type":"etcd","endpoints":["http://192.0.2.1:2379"]%s}}`
	_, err := netconf.Load([]byte(fmt.Sprintf(base, "")), "eth0")
	var cniErr *types.Error
	if !errors.As(err, &cniErr) || cniErr.Code != 7 || !strings.Contains(cniErr.Error(), "store.endpoints") || !strings.Contains(cniErr.Error(), "http://192.0.2.1:2379") {
		t.Fatalf("plaintext endpoint: %v, want code 7 naming store.endpoints", err)
	}
	if _, err := netconf.Load([]byte(fmt.Sprintf(base, `,"insecure":true`)), "eth0"); err != nil {
		t.Fatalf("plaintext endpoint with insecure: %v", err)
	}
}

func TestUnderlay(t *testing.T) {
	v := netconf.VXLAN{UnderlayCIDRs: []string{"192.0.2.7/24", "2001:db8::/32"}}
	got, err := v.Underlay()
	if err != nil || len(got) != 2 || got[0].String() != "192.0.2.0/24" {
		t.Fatalf("Underlay() = %v, %v", got, err)
	}
	v.UnderlayCIDRs = []string{"192.0.2.0"}
	if _, err := v.Underlay(); err == nil || !strings.Contains(err.Error(), "vxlan.underlayCIDRs") {
		t.Fatalf("Underlay() of a bare address: %v, want an error naming vxlan.underlayCIDRs", err)
	}
}
