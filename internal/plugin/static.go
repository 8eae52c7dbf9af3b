package plugin

import (
	"fmt"
	"net"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// staticLink is a link from the network config, with its pod end.
type staticLink struct {
	link.Link
	pod   *link.Endpoint
	peers []ns.NetNS // namespaces opened for this link, closed by close
}

type staticLinks []staticLink

func (s staticLinks) close() {
	for _, l := range s {
		for _, n := range l.peers {
			n.Close()
		}
	}
}

// peerNetns returns the paths of the peer namespaces the links reach.
func (s staticLinks) peerNetns() []string {
	var paths []string
	for _, l := range s {
		for _, n := range l.peers {
			paths = append(paths, n.Path())
		}
	}
	return paths
}

func (s staticLinks) names() []string {
	names := make([]string, len(s))
	for i, l := range s {
		names[i] = l.pod.Name
	}
	return names
}

// buildEnv is what a link builder needs besides the spec.
type buildEnv struct {
	conf      *netconf.NetConf
	pod, host ns.NetNS
	marker    link.Marker
	field     string
}

// staticKinds builds each kind of static link. A new kind is one entry here
// and one file in pkg/link.
var staticKinds = map[string]func(spec *netconf.LinkSpec, env buildEnv) (staticLink, error){
	netconf.KindNetns:   buildNetnsVeth,
	netconf.KindVXLAN:   buildVxlan,
	netconf.KindMacvlan: buildMacvlan,
}

// buildStatic turns the validated static links into link values, opening
// every namespace they name; nothing is created yet.
func buildStatic(conf *netconf.NetConf, pod, host ns.NetNS, o owner) (staticLinks, error) {
	var links staticLinks
	for i := range conf.Links {
		spec := &conf.Links[i]
		if spec.Kind() == netconf.KindPod {
			continue // a pod link, made with the annotation links
		}
		build, ok := staticKinds[spec.Kind()]
		if !ok {
			links.close()
			return nil, types.NewError(types.ErrUnsupportedField, fmt.Sprintf("links[%d] (%s): unknown kind %s", i, spec.Name, spec.Kind()), "")
		}
		l, err := build(spec, buildEnv{conf: conf, pod: pod, host: host, marker: o.marker(spec.Name), field: fmt.Sprintf("links[%d]", i)})
		if err != nil {
			links.close()
			return nil, err
		}
		links = append(links, l)
	}
	return links, nil
}

func podEnd(spec *netconf.LinkSpec, pod ns.NetNS) link.Endpoint {
	end := spec.Local()
	end.NS = pod
	return end
}

func buildNetnsVeth(spec *netconf.LinkSpec, env buildEnv) (staticLink, error) {
	peerNS, err := link.OpenNetns(spec.Peer.Netns)
	if err != nil {
		return staticLink{}, netconf.Invalid(env.field+".peer.netns", spec.Peer.Netns, err.Error())
	}
	v := &link.Veth{A: podEnd(spec, env.pod), B: spec.Remote(), Marker: env.marker}
	v.B.NS = peerNS
	return staticLink{Link: v, pod: &v.A, peers: []ns.NetNS{peerNS}}, nil
}

func buildVxlan(spec *netconf.LinkSpec, env buildEnv) (staticLink, error) {
	s, c := spec.VXLAN, env.conf
	v := &link.Vxlan{
		End:      podEnd(spec, env.pod),
		Underlay: env.host,
		Dev:      firstNonEmpty(s.Dev, c.Node.VtepDev),
		VNI:      s.VNI,
		Remote:   net.ParseIP(s.Remote),
		Local:    net.ParseIP(c.Node.VtepIP),
		Port:     s.Port,
		Marker:   env.marker,
	}
	if v.Port == 0 {
		v.Port = c.VXLAN.Port
	}
	if v.End.MTU == 0 {
		v.End.MTU = c.VXLAN.MTU
	}
	return staticLink{Link: v, pod: &v.End}, nil
}

func buildMacvlan(spec *netconf.LinkSpec, env buildEnv) (staticLink, error) {
	m := &link.Macvlan{End: podEnd(spec, env.pod), Underlay: env.host, Master: spec.Macvlan.Master, Mode: spec.Macvlan.Mode, Marker: env.marker}
	return staticLink{Link: m, pod: &m.End}, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
