package podlink_test

import (
	"testing"

	"github.com/ratchet-cni/ratchet/internal/linkparam"
	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// EndVeth is what both the plugin's ADD and `ratchetctl link add` make:
// the attachment's marker (so that the pod's DEL removes the end), the
// stable MAC and an explicit MTU.
func TestEndVeth(t *testing.T) {
	key := store.AttachmentKey{Network: "bench", ContainerID: "veth-1", IfName: "eth0"}
	rec := &store.LinkRecord{Ends: [2]store.LinkEnd{{Pod: "default/router-a", IfName: "eth1"}, {Pod: "default/b", IfName: "x"}}}
	v := podlink.EndVeth(rec, 0, link.Endpoint{Name: "eth1"}, key, 0)
	if v.Marker.Alias != "ratchet:76404802acf3:eth1" || v.Marker.Group != 1652824255 {
		t.Errorf("marker %+v", v.Marker)
	}
	if v.A.MAC.String() != "76:f5:6a:5e:e8:d1" || v.A.MTU != linkparam.DefaultMTU || v.B.Name == "" {
		t.Errorf("end %+v, parked %q", v.A, v.B.Name)
	}
	if v := podlink.EndVeth(rec, 0, link.Endpoint{Name: "eth1", MTU: 9000}, key, 1450); v.A.MTU != 9000 {
		t.Errorf("MTU %d, want the spec's 9000", v.A.MTU)
	}
	if v := podlink.EndVeth(rec, 0, link.Endpoint{Name: "eth1"}, key, 1450); v.A.MTU != 1450 {
		t.Errorf("MTU %d, want the default 1450", v.A.MTU)
	}
}
