package kind

import (
	"github.com/ratchet-cni/ratchet/internal/netconf"
)

// podUnit is a veth link to another pod, peer.pod: declared by the
// network config or by pod annotations, and made by the pod-link code
// (internal/plugin) through the parking namespace, so it builds no link
// here.
var podUnit = Unit{
	Kind: netconf.Kind{
		Name:     netconf.KindPod,
		InPeer:   func(p *netconf.Peer) bool { return p.Pod != "" },
		Validate: validatePod,
	},
}

func validatePod(l *netconf.LinkSpec, field string) error {
	p := l.Peer
	if !netconf.IsDNSName(p.Pod) || len(p.Pod) > 253 {
		return netconf.Invalid(field+".peer.pod", p.Pod, "not a Kubernetes object name")
	}
	if p.Namespace != "" && (!netconf.IsDNSName(p.Namespace) || len(p.Namespace) > 63) {
		return netconf.Invalid(field+".peer.namespace", p.Namespace, "not a Kubernetes namespace name")
	}
	if p.Name == "" {
		return netconf.Invalid(field+".peer.name", "", "a pod link names the peer's interface (the peer must declare the link back with this name)")
	}
	if err := netconf.CheckPodLinkName(p.Name); err != nil {
		return netconf.Invalid(field+".peer.name", p.Name, err.Error())
	}
	// The name may be empty in a network config (the link takes
	// CNI_IFNAME, which the runtime chose); any other is checked as both
	// ends' names are: they are parts of the link's id.
	if l.Name != "" {
		if err := netconf.CheckPodLinkName(l.Name); err != nil {
			return netconf.Invalid(field+".name", l.Name, err.Error())
		}
	}
	if len(p.IPs) > 0 || p.MAC != "" || p.MTU != 0 || len(p.Routes) > 0 {
		return netconf.Invalid(field+".peer", p.Pod, "a pod peer configures its own end; peer.ips/mac/mtu/routes are for peer.netns")
	}
	return nil
}
