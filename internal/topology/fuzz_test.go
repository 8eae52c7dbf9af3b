package topology_test

import (
	"errors"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/internal/topology"
)

func cniError(t *testing.T, err error, input any) {
	t.Helper()
	var e *types.Error
	if !errors.As(err, &e) || e.Code == 0 || e.Code == types.ErrInternal || e.Msg == "" {
		t.Fatalf("rejection of %q is not a CNI error with a code: %#v", input, err)
	}
}

// FuzzAnnotations: any ratchet.cni.dev/links value is read or refused with
// a CNI error; what is read only ever names pods.
func FuzzAnnotations(f *testing.F) {
	for _, seed := range []string{
		`[{"name":"e1","ips":["192.0.2.1/30"],"peer":{"pod":"r2","name":"w1"}}]`,
		`[{"name":"e1","peer":{"pod":"r2","namespace":"other","name":"w1"}}]`,
		`[{"name":"e1","peer":{"netns":"/proc/1/ns/net"}}]`,
		`[{"name":"e1","vxlan":{"remote":"192.0.2.1","vni":1}}]`,
		`[[[[[[]]]]]]`, `{}`, `[{}]`, `null`,
		`[{"name":"x~lab/r2|y","peer":{"pod":"r2","name":"z"}}]`,
		`[{"name":"x","peer":{"pod":"r2","name":"y~lab/r2|z"}}]`,
		`[{"name":"e%7C1","peer":{"pod":"r2","name":"w1"}}]`,
		`[{"name":"x~y|z","peer":{"pod":"r2","name":"w|1"}}]`,
		`[{"name":"My_e1.2-x","peer":{"pod":"r2","name":"W-1"}}]`,
		// 65 routes, one over linkparam.MaxRoutesPerLink.
		`[{"name":"e1","peer":{"pod":"r2","name":"w1"},"routes":[{"dst":"2001:db8:1::/48"},{"dst":"2001:db8:2::/48"},{"dst":"2001:db8:3::/48"},{"dst":"2001:db8:4::/48"},{"dst":"2001:db8:5::/48"},{"dst":"2001:db8:6::/48"},{"dst":"2001:db8:7::/48"},{"dst":"2001:db8:8::/48"},{"dst":"2001:db8:9::/48"},{"dst":"2001:db8:a::/48"},{"dst":"2001:db8:b::/48"},{"dst":"2001:db8:c::/48"},{"dst":"2001:db8:d::/48"},{"dst":"2001:db8:e::/48"},{"dst":"2001:db8:f::/48"},{"dst":"2001:db8:10::/48"},{"dst":"2001:db8:11::/48"},{"dst":"2001:db8:12::/48"},{"dst":"2001:db8:13::/48"},{"dst":"2001:db8:14::/48"},{"dst":"2001:db8:15::/48"},{"dst":"2001:db8:16::/48"},{"dst":"2001:db8:17::/48"},{"dst":"2001:db8:18::/48"},{"dst":"2001:db8:19::/48"},{"dst":"2001:db8:1a::/48"},{"dst":"2001:db8:1b::/48"},{"dst":"2001:db8:1c::/48"},{"dst":"2001:db8:1d::/48"},{"dst":"2001:db8:1e::/48"},{"dst":"2001:db8:1f::/48"},{"dst":"2001:db8:20::/48"},{"dst":"2001:db8:21::/48"},{"dst":"2001:db8:22::/48"},{"dst":"2001:db8:23::/48"},{"dst":"2001:db8:24::/48"},{"dst":"2001:db8:25::/48"},{"dst":"2001:db8:26::/48"},{"dst":"2001:db8:27::/48"},{"dst":"2001:db8:28::/48"},{"dst":"2001:db8:29::/48"},{"dst":"2001:db8:2a::/48"},{"dst":"2001:db8:2b::/48"},{"dst":"2001:db8:2c::/48"},{"dst":"2001:db8:2d::/48"},{"dst":"2001:db8:2e::/48"},{"dst":"2001:db8:2f::/48"},{"dst":"2001:db8:30::/48"},{"dst":"2001:db8:31::/48"},{"dst":"2001:db8:32::/48"},{"dst":"2001:db8:33::/48"},{"dst":"2001:db8:34::/48"},{"dst":"2001:db8:35::/48"},{"dst":"2001:db8:36::/48"},{"dst":"2001:db8:37::/48"},{"dst":"2001:db8:38::/48"},{"dst":"2001:db8:39::/48"},{"dst":"2001:db8:3a::/48"},{"dst":"2001:db8:3b::/48"},{"dst":"2001:db8:3c::/48"},{"dst":"2001:db8:3d::/48"},{"dst":"2001:db8:3e::/48"},{"dst":"2001:db8:3f::/48"},{"dst":"2001:db8:40::/48"},{"dst":"2001:db8:41::/48"}]}]`,
	} {
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, links string, cross bool) {
		d, err := topology.Declared(map[string]string{topology.LinksAnnotation: links}, topology.PodID{Namespace: "lab", Name: "r1"}, topology.Rules{AllowCrossNamespace: cross, MaxLinks: 64})
		if err != nil {
			cniError(t, err, links)
			return
		}
		for _, l := range d.Links {
			if l.Spec.Kind() != netconf.KindPod || l.Peer.Name == "" || l.Spec.Peer.Name == "" {
				t.Fatalf("read a link that is not a pod link: %+v from %q", l, links)
			}
			if !cross && l.Peer.Namespace != "lab" {
				t.Fatalf("crossed namespaces without leave: %q", links)
			}
			if !safeName(l.Spec.Name) || !safeName(l.Spec.Peer.Name) {
				t.Fatalf("accepted a pod-link name outside [A-Za-z0-9_.-]: %q, %q from %q", l.Spec.Name, l.Spec.Peer.Name, links)
			}
		}
	})
}

// safeName is the pod-link interface name set, written out here rather
// than taken from the code under test: 1 to 15 of [A-Za-z0-9_.-], not "."
// or "..".
func safeName(s string) bool {
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

// FuzzLegacyKeys: any combination of Ratchet's keys is read or refused
// with a CNI error; without legacyKeys always refused; a pair consents
// only to the primary it names.
func FuzzLegacyKeys(f *testing.F) {
	f.Add("true", "r1", "true", "r2", "in1", "192.0.2.100", "in2", "192.0.2.101")
	f.Add("true", "r1", "false", "", "", "", "", "")
	f.Add("true", "r1", "false", "r2", "", "", "", "")
	f.Add("true", "r1", "false", "r1", "", "", "", "")
	f.Add("true", "r1", "true", "r2", "in1", "", "x~y|z", "")
	f.Add("false", "", "true", "r2", "in1", "x", "in2", "2001:db8::1")
	f.Fuzz(func(t *testing.T, enabled, podName, primary, pair, localIf, localIP, pairIf, pairIP string) {
		ann := map[string]string{"ratchet": enabled, "ratchet.pod_name": podName, "ratchet.primary": primary,
			"ratchet.pair_name": pair, "ratchet.local_ifname": localIf, "ratchet.local_ip": localIP,
			"ratchet.pair_ifname": pairIf, "ratchet.pair_ip": pairIP}
		self := topology.PodID{Namespace: "lab", Name: "r1"}
		_, err := topology.Declared(ann, self, topology.Rules{MaxLinks: 64})
		cniError(t, err, ann) // without legacyKeys, any of the keys is refused
		d, err := topology.Declared(ann, self, topology.Rules{LegacyKeys: true, MaxLinks: 64})
		if err != nil {
			cniError(t, err, ann)
			return
		}
		for _, l := range d.Links {
			if l.PeerEnd == nil || !safeName(l.PeerEnd.Name) || !safeName(l.Spec.Name) {
				t.Fatalf("read a bad legacy link %+v from %v", l, ann)
			}
		}
		if d.LegacyConsent != (d.LegacyPrimary != "") {
			t.Fatalf("consent %v with primary %q", d.LegacyConsent, d.LegacyPrimary)
		}
		if d.LegacyConsent && (enabled != "true" || primary == "true" || d.LegacyPrimary != "lab/"+pair || pair == "r1") {
			t.Fatalf("consent to %q read from %v", d.LegacyPrimary, ann)
		}
	})
}

// FuzzPodFromArgs: any CNI_ARGS gives a pod identity or a CNI error.
func FuzzPodFromArgs(f *testing.F) {
	f.Add("IgnoreUnknown=1;K8S_POD_NAMESPACE=lab;K8S_POD_NAME=r1;K8S_POD_UID=u", "abc")
	f.Add("IgnoreUnknown=1;K8S_POD_NAME=e2e-pod1", "0123abcd")
	f.Add("", "default-e2e-ctr1")
	f.Add("K8S_POD_NAME==;;=", "")
	f.Fuzz(func(t *testing.T, args, container string) {
		p, err := topology.PodFromArgs(args, container)
		if err != nil {
			cniError(t, err, args)
			return
		}
		if p.Name == "" {
			t.Fatalf("empty pod name from %q, %q", args, container)
		}
	})
}
