package kind

import (
	"fmt"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/linkparam"
	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// Macvlan is the "macvlan" sub-object of a link: the link end is a
// macvlan of a node device (network config only).
type Macvlan struct {
	Master string `json:"master"`
	// Mode is one of linkparam.MacvlanModes; empty means bridge.
	Mode string `json:"mode,omitempty"`
}

// macvlanUnit is a macvlan of a node device in the pod. An end without an
// MTU gets its master's, which CHECK compares.
var macvlanUnit = Unit{
	Kind: netconf.Kind{
		Name:         "macvlan",
		New:          func() any { return &Macvlan{} },
		HostResource: true,
		Validate:     validateMacvlan,
	},
	Build: buildMacvlan,
	Flag: &Flag{
		Name:  "M",
		Arg:   "PARENT,MODE",
		Usage: "a macvlan on PARENT (" + strings.Join(linkparam.MacvlanModes, ", ") + ")",
		Parse: parseMacvlanFlag,
	},
}

func validateMacvlan(l *netconf.LinkSpec, field string) error {
	m := l.Spec.(*Macvlan)
	if err := netconf.CheckIfName(m.Master); err != nil {
		return netconf.Invalid(field+".macvlan.master", m.Master, err.Error())
	}
	if m.Mode != "" {
		if err := linkparam.CheckMacvlanMode(m.Mode); err != nil {
			return netconf.Invalid(field+".macvlan.mode", m.Mode, err.Error())
		}
	}
	return nil
}

func buildMacvlan(spec *netconf.LinkSpec, env Env) (Built, error) {
	s := spec.Spec.(*Macvlan)
	m := &link.Macvlan{End: podEnd(spec, env), Underlay: env.Host, Master: s.Master, Mode: s.Mode, Marker: env.Marker}
	if err := parentMTU(&m.End, env, env.Field+".macvlan.master", s.Master); err != nil {
		return Built{}, err
	}
	return Built{Link: m, Pod: &m.End}, nil
}

func parseMacvlanFlag(value string) (func(link.Endpoint, ns.NetNS, link.Marker) link.Link, error) {
	parent, mode, ok := strings.Cut(value, ",")
	if !ok || parent == "" || linkparam.CheckMacvlanMode(mode) != nil {
		return nil, fmt.Errorf("-M %q: want PARENT,MODE with MODE %s", value, strings.Join(linkparam.MacvlanModes, ", "))
	}
	return func(end link.Endpoint, underlay ns.NetNS, m link.Marker) link.Link {
		return &link.Macvlan{End: end, Underlay: underlay, Master: parent, Mode: mode, Marker: m}
	}, nil
}
