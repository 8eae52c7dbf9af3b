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
	} {
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, links string, cross bool) {
		d, err := topology.Declared(map[string]string{topology.LinksAnnotation: links}, topology.PodID{Namespace: "lab", Name: "r1"}, cross, 64)
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
		}
	})
}

// FuzzLegacyKeys: any combination of Ratchet's keys is read or refused
// with a CNI error.
func FuzzLegacyKeys(f *testing.F) {
	f.Add("true", "r1", "true", "r2", "in1", "192.0.2.100", "in2", "192.0.2.101")
	f.Add("true", "r1", "false", "", "", "", "", "")
	f.Add("false", "", "true", "r2", "in1", "x", "in2", "2001:db8::1")
	f.Fuzz(func(t *testing.T, enabled, podName, primary, pair, localIf, localIP, pairIf, pairIP string) {
		ann := map[string]string{"ratchet": enabled, "ratchet.pod_name": podName, "ratchet.primary": primary,
			"ratchet.pair_name": pair, "ratchet.local_ifname": localIf, "ratchet.local_ip": localIP,
			"ratchet.pair_ifname": pairIf, "ratchet.pair_ip": pairIP}
		d, err := topology.Declared(ann, topology.PodID{Namespace: "lab", Name: "r1"}, false, 64)
		if err != nil {
			cniError(t, err, ann)
			return
		}
		for _, l := range d.Links {
			if l.PeerEnd == nil || netconf.CheckIfName(l.PeerEnd.Name) != nil || netconf.CheckIfName(l.Spec.Name) != nil {
				t.Fatalf("read a bad legacy link %+v from %v", l, ann)
			}
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
