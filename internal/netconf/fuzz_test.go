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
