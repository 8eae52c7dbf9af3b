package podlink

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"net"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/crypto/blake2b"

	"github.com/ratchet-cni/ratchet/internal/linkparam"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// OwnerOf returns how the netdevs of attachment key are marked: an alias
// prefix unique to the attachment and a netdev group derived from it, so
// that its DEL deletes them together. Both derive from the key alone, so
// DEL, CHECK, GC and `ratchetctl link add` (which makes an end on a pod's
// behalf) agree with no state at all.
func OwnerOf(key store.AttachmentKey) (prefix string, group uint32) {
	sum := blake2b.Sum256([]byte(key.String()))
	// 2^30 and up keeps clear of the small group numbers admins use;
	// under 2^31, ip(8) shows it as the positive number it is.
	return "ratchet:" + hex.EncodeToString(sum[:6]) + ":", binary.BigEndian.Uint32(sum[6:10])&(1<<30-1) | 1<<30
}

// MarkerOf is the marker of the pod interface ifName that attachment key
// holds.
func MarkerOf(key store.AttachmentKey, ifName string) link.Marker {
	prefix, group := OwnerOf(key)
	return link.Marker{Alias: prefix + ifName, Group: group}
}

// StableMAC derives a pod link interface's MAC from the pod and interface
// names: a pod that restarts comes back with the same MACs, so its peers'
// neighbour entries stay right (a new MAC would leave them sending to the
// old one until their entries expire). Locally administered, unicast.
func StableMAC(pod, ifName string) net.HardwareAddr {
	sum := blake2b.Sum256([]byte("ratchet-mac\x00" + pod + "\x00" + ifName))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = mac[0]&0xfe | 0x02
	return mac
}

// EndVeth is the veth of end i of rec, which attachment key holds: pod is
// the pod's interface as its spec says (in its namespace), the parked end
// gets a fresh name. An interface with no MTU gets defaultMTU, else the
// kernel's default, explicitly (a result carries it); one with no MAC its
// stable MAC.
func EndVeth(rec *store.LinkRecord, i int, pod link.Endpoint, key store.AttachmentKey, defaultMTU int) *link.Veth {
	v := &link.Veth{A: pod, B: link.Endpoint{Name: link.RandomName("rp")}, Marker: MarkerOf(key, pod.Name)}
	if v.A.MTU == 0 {
		v.A.MTU = defaultMTU
	}
	if v.A.MTU == 0 {
		v.A.MTU = linkparam.DefaultMTU
	}
	if v.A.MAC == nil {
		v.A.MAC = StableMAC(rec.Ends[i].Pod, rec.Ends[i].IfName)
	}
	return v
}

// RemoveEnd removes the veth of end i of rec, whose pod interface is in
// podNS: its parked end goes with it. Only a netdev that carries the
// marker of the attachment that made the end is removed, and one already
// gone is no error (`ratchetctl link del` may run again). The end must
// have an attachment.
func (x *Executor) RemoveEnd(ctx context.Context, rec *store.LinkRecord, i int, podNS ns.NetNS) error {
	e := rec.Ends[i]
	v := &link.Veth{
		A:      link.Endpoint{Name: e.IfName, NS: podNS},
		B:      link.Endpoint{Name: e.Parked, NS: x.park.NS},
		Marker: MarkerOf(*e.Attachment, e.IfName),
	}
	return v.Remove(ctx, x.k)
}
