package kind

import (
	"path/filepath"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/linkparam"
	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// netnsUnit is a veth link to a network namespace, peer.netns: the peer
// end is configured by the spec too. Either end without an MTU gets the
// kernel's default for a veth (linkparam.DefaultMTU), which CHECK compares.
var netnsUnit = Unit{
	Kind: netconf.Kind{
		Name:         netconf.KindNetns,
		InPeer:       func(p *netconf.Peer) bool { return p.Netns != "" },
		HostResource: true,
		Validate:     validateNetns,
	},
	Build: buildNetns,
}

func validateNetns(l *netconf.LinkSpec, field string) error {
	p := l.Peer
	if p.Namespace != "" {
		return netconf.Invalid(field+".peer.namespace", p.Namespace, "only a pod peer has a namespace")
	}
	if filepath.IsAbs(p.Netns) {
		if filepath.Clean(p.Netns) != p.Netns {
			return netconf.Invalid(field+".peer.netns", p.Netns, "not a clean path")
		}
	} else if _, err := link.NetnsPath("name", p.Netns); err != nil {
		return netconf.Invalid(field+".peer.netns", p.Netns, "neither an absolute path nor an `ip netns` name")
	}
	_, err := peerEnd(l, field)
	return err
}

// peerEnd parses the peer end, named like the local end unless it says.
func peerEnd(l *netconf.LinkSpec, field string) (netconf.End, error) {
	p := l.Peer
	name := p.Name
	if name == "" {
		name = l.Name
	}
	return netconf.ParseEnd(field+".peer", name, p.IPs, p.MAC, p.MTU, p.Routes)
}

func buildNetns(spec *netconf.LinkSpec, env Env) (Built, error) {
	remote, err := peerEnd(spec, env.Field)
	if err != nil {
		return Built{}, err
	}
	peerNS, err := link.OpenNetns(spec.Peer.Netns)
	if err != nil {
		return Built{}, netconf.Invalid(env.Field+".peer.netns", spec.Peer.Netns, err.Error())
	}
	v := &link.Veth{A: podEnd(spec, env), B: Endpoint(remote, peerNS), Marker: env.Marker}
	for _, end := range []*link.Endpoint{&v.A, &v.B} {
		if end.MTU == 0 {
			end.MTU = linkparam.DefaultMTU
		}
	}
	return Built{Link: v, Pod: &v.A, Opened: []ns.NetNS{peerNS}}, nil
}
