package plugin

import (
	"fmt"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/kind"
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

// buildStatic turns the validated static links into link values for ADD,
// opening every namespace they name; nothing is created yet.
func buildStatic(conf *netconf.NetConf, pod, host ns.NetNS, o owner) (staticLinks, error) {
	return buildStaticLinks(conf, pod, host, o, false)
}

// buildStaticCheck is buildStatic for CHECK: every end expects the MTU it
// was made with, its kind's default when the spec sets none.
func buildStaticCheck(conf *netconf.NetConf, pod, host ns.NetNS, o owner) (staticLinks, error) {
	return buildStaticLinks(conf, pod, host, o, true)
}

// buildStaticLinks builds each static link with its kind's unit
// (internal/kind).
func buildStaticLinks(conf *netconf.NetConf, pod, host ns.NetNS, o owner, check bool) (staticLinks, error) {
	var links staticLinks
	for i := range conf.Links {
		spec := &conf.Links[i]
		if spec.Kind() == netconf.KindPod {
			continue // a pod link, made with the annotation links
		}
		unit, ok := kind.Lookup(spec.Kind())
		if !ok || unit.Build == nil {
			links.close()
			return nil, types.NewError(types.ErrUnsupportedField, fmt.Sprintf("links[%d] (%s): unknown kind %s", i, spec.Name, spec.Kind()), "")
		}
		env := kind.Env{Conf: conf, Pod: pod, Host: host, Marker: o.marker(spec.Name), Field: fmt.Sprintf("links[%d]", i), Check: check}
		b, err := unit.Build(spec, env)
		if err != nil {
			links.close()
			return nil, err
		}
		links = append(links, staticLink{Link: b.Link, pod: b.Pod, peers: b.Opened})
	}
	return links, nil
}
