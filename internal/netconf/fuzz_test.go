package netconf_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/netconf"
)

// cniError fails the test unless err is a CNI error with a code.
func cniError(t *testing.T, err error, input any) {
	t.Helper()
	var e *types.Error
	if !errors.As(err, &e) || e.Code == 0 || e.Code == types.ErrInternal || e.Msg == "" {
		t.Fatalf("rejection of %q is not a CNI error with a code: %#v", input, err)
	}
}

// FuzzLoad: any stdin either loads or is refused with a CNI error; never
// a panic.
func FuzzLoad(f *testing.F) {
	for _, seed := range []string{
		`{"cniVersion":"1.0.0","name":"lab","type":"ratchet"}`,
		`{"cniVersion":"1.0.0","name":"lab","links":[{"name":"in1","ips":["192.0.2.1/24"],"peer":{"netns":"r2","name":"in2"}}]}`,
		`{"cniVersion":"1.0.0","name":"lab","links":[{"name":"vx","vxlan":{"remote":"192.0.2.2","vni":5}}],"vxlan":{"port":4790,"vniRange":"1-9","mtu":1400}}`,
		`{"cniVersion":"1.0.0","name":"lab","prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}]},"links":[{"name":"m","macvlan":{"master":"eth0"}}]}`,
		`{"cniVersion":"1.0.0","name":"lab","links":[{"name":"v","mtu":1400,"vlan":{"master":"eth0","id":4094}}]}`,
		`{"cniVersion":"1.0.0","name":"lab","store":{"type":"etcd","endpoints":["127.0.0.1:2379"]},"maxLinksPerPod":"x"}`,
		`{"cniVersion":"1.0.0","name":"lab","maxLinksPerPod":128,"maxParkedEnds":-1}`,
		`{"links":[{"netem":{"delay":"1ms","loss":"1%","rate":"1mbit"},"routes":[{"dst":"198.51.100.0/24","gw":"192.0.2.1"}]}]}`,
		`{"cniVersion":"1.0.0","name":"lab","store":{"type":"etcd","endpoints":["http://192.0.2.1:2379"],"insecure":true}}`,
		`{"cniVersion":"1.0.0","name":"lab","store":{"type":"etcd","endpoints":["HTTPS://192.0.2.1:2379","unix:///run/e"],"tls":{"ca":"/ca.pem"}}}`,
		`{"cniVersion":"1.0.0","name":"lab","node":{"vtepIP":"::ffff:192.0.2.9"},"vxlan":{"underlayCIDRs":["192.0.2.0/24","2001:db8::/32"]}}`,
		`{"cniVersion":"1.0.0","name":"lab","vxlan":{"underlayCIDRs":["192.0.2.1/40",""]}}`,
		`[`, ``, `null`,
	} {
		f.Add([]byte(seed), "eth0")
	}
	f.Fuzz(func(t *testing.T, stdin []byte, ifName string) {
		conf, err := netconf.Load(stdin, ifName)
		if err != nil {
			cniError(t, err, stdin)
			return
		}
		for _, l := range conf.Links {
			if err := netconf.CheckIfName(l.Name); err != nil {
				t.Fatalf("loaded a link with a bad name %q", l.Name)
			}
		}
		if conf.Store.Type == "etcd" && !conf.Store.Insecure {
			tls := conf.Store.TLS != nil && (conf.Store.TLS.CA != "" || conf.Store.TLS.Cert != "")
			for _, ep := range conf.Store.Endpoints {
				if netconf.PlaintextEndpoint(ep, tls) {
					t.Fatalf("loaded plaintext endpoint %q without store.insecure", ep)
				}
			}
		}
		if _, err := conf.VXLAN.Underlay(); err != nil {
			t.Fatalf("loaded vxlan.underlayCIDRs %q that do not parse: %v", conf.VXLAN.UnderlayCIDRs, err)
		}
	})
}

// FuzzLinkSpec: any link, from either source, validates or is refused with
// a CNI error; an annotation link never names a host resource; a valid
// link survives a JSON round trip.
func FuzzLinkSpec(f *testing.F) {
	for _, seed := range []string{
		`{"name":"e1","ips":["192.0.2.1/24","2001:db8::1/64"],"mac":"02:00:00:00:00:01","mtu":1500,"peer":{"pod":"r2","name":"w1"}}`,
		`{"name":"e1","peer":{"netns":"/proc/1/ns/net"}}`,
		`{"name":"e1","vxlan":{"remote":"2001:db8::9","vni":16777215,"port":1,"dev":"eth0"}}`,
		`{"name":"e1","macvlan":{"master":"eth0","mode":"passthru"}}`,
		`{"name":"e1","peer":{"pod":"r2","netns":"x","name":"w1"},"netem":{"jitter":"1ms"}}`,
		`{"name":"e1","vlan":{"master":"eth0","id":42}}`,
		`{"name":"e1","vlan":{"master":"eth0","id":4095},"macvlan":{"master":"eth0"}}`,
		`{"name":"x~ns/b|y","peer":{"pod":"b","name":"z"}}`,
		`{"name":"x","peer":{"pod":"b","name":"y~ns/b|z"}}`,
		`{"name":"e%1","peer":{"pod":"b","name":"w1"}}`,
		`{"peer":{"pod":"b","name":"W_1.x-y"}}`,
		`{"name":"x~y|z","peer":{"pod":"b","name":"w|1"}}`,
		// 65 addresses, one over linkparam.MaxAddrsPerLink.
		`{"name":"e1","peer":{"pod":"r2","name":"w1"},"ips":["2001:db8::1/64","2001:db8::2/64","2001:db8::3/64","2001:db8::4/64","2001:db8::5/64","2001:db8::6/64","2001:db8::7/64","2001:db8::8/64","2001:db8::9/64","2001:db8::a/64","2001:db8::b/64","2001:db8::c/64","2001:db8::d/64","2001:db8::e/64","2001:db8::f/64","2001:db8::10/64","2001:db8::11/64","2001:db8::12/64","2001:db8::13/64","2001:db8::14/64","2001:db8::15/64","2001:db8::16/64","2001:db8::17/64","2001:db8::18/64","2001:db8::19/64","2001:db8::1a/64","2001:db8::1b/64","2001:db8::1c/64","2001:db8::1d/64","2001:db8::1e/64","2001:db8::1f/64","2001:db8::20/64","2001:db8::21/64","2001:db8::22/64","2001:db8::23/64","2001:db8::24/64","2001:db8::25/64","2001:db8::26/64","2001:db8::27/64","2001:db8::28/64","2001:db8::29/64","2001:db8::2a/64","2001:db8::2b/64","2001:db8::2c/64","2001:db8::2d/64","2001:db8::2e/64","2001:db8::2f/64","2001:db8::30/64","2001:db8::31/64","2001:db8::32/64","2001:db8::33/64","2001:db8::34/64","2001:db8::35/64","2001:db8::36/64","2001:db8::37/64","2001:db8::38/64","2001:db8::39/64","2001:db8::3a/64","2001:db8::3b/64","2001:db8::3c/64","2001:db8::3d/64","2001:db8::3e/64","2001:db8::3f/64","2001:db8::40/64","2001:db8::41/64"]}`,
	} {
		f.Add([]byte(seed), true)
	}
	f.Fuzz(func(t *testing.T, raw []byte, fromAnnotation bool) {
		var spec netconf.LinkSpec
		if json.Unmarshal(raw, &spec) != nil {
			return
		}
		src := netconf.Static
		if fromAnnotation {
			src = netconf.Annotation
		}
		if err := spec.Validate("links[0]", src); err != nil {
			cniError(t, err, raw)
			return
		}
		if fromAnnotation && spec.Kind() != netconf.KindPod {
			t.Fatalf("an annotation link of kind %s was accepted: %s", spec.Kind(), raw)
		}
		// A pod link's names are parts of its link id: only the safe set.
		if spec.Kind() == netconf.KindPod && (spec.Name != "" && !safePodLinkName(spec.Name) || !safePodLinkName(spec.Peer.Name)) {
			t.Fatalf("a pod link with a name outside [A-Za-z0-9_.-] was accepted: %s", raw)
		}
		// A valid spec survives a JSON round trip (the store records pod
		// links' specs as JSON).
		out, err := json.Marshal(spec)
		if err != nil {
			t.Fatalf("marshal %s: %v", raw, err)
		}
		var again netconf.LinkSpec
		if err := json.Unmarshal(out, &again); err != nil {
			t.Fatalf("%s became %s, which does not decode: %v", raw, out, err)
		}
		if err := again.Validate("links[0]", src); err != nil || again.Kind() != spec.Kind() {
			t.Fatalf("%s became %s: kind %s, %v", raw, out, again.Kind(), err)
		}
	})
}

// safePodLinkName is the pod-link interface name set, written out here
// rather than taken from the code under test.
func safePodLinkName(s string) bool {
	if s == "" || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}
