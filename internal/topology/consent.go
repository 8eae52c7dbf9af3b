package topology

import "fmt"

// Consent is the pod link rule: a link between two pods exists only while
// both declare it, each its own end naming the other's. Reverse finds, in
// the declaration of l's peer pod, the end that consents to l (declared
// by pod self): the peer's link named as l's peer interface, naming self
// and l's interface as its peer. Without one, ok is false and why says
// what the peer declares instead, for the operator. A legacy link
// (PeerEnd) has its own consent rule and is never matched here.
func (d *Declaration) Reverse(self PodID, l Link) (peerEnd Link, ok bool, why string) {
	if l.Spec.Peer == nil || l.PeerEnd != nil {
		return Link{}, false, "not a link to a pod's interface"
	}
	want := l.Spec.Peer.Name
	for _, p := range d.Links {
		if p.Spec.Name != want {
			continue
		}
		if p.PeerEnd != nil || p.Spec.Peer == nil {
			return Link{}, false, fmt.Sprintf("pod %s declares its %s by Ratchet's keys", l.Peer, want)
		}
		if p.Peer.Namespace != self.Namespace || p.Peer.Name != self.Name || p.Spec.Peer.Name != l.Spec.Name {
			return Link{}, false, fmt.Sprintf("pod %s links its %s to %s:%s, not to %s:%s", l.Peer, want, p.Peer, p.Spec.Peer.Name, self, l.Spec.Name)
		}
		return p, true, ""
	}
	return Link{}, false, fmt.Sprintf("pod %s declares no link %s", l.Peer, want)
}
