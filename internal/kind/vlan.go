package kind

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/linkparam"
	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// Vlan is the "vlan" sub-object of a link: the link end is an 802.1Q
// sub-interface of a node device (network config only).
type Vlan struct {
	Master string `json:"master"`
	ID     int    `json:"id"`
}

// vlanUnit is a vlan sub-interface of a node device in the pod. An end
// without an MTU gets its master's, which CHECK compares. The kernel
// needs the 8021q module.
var vlanUnit = Unit{
	Kind: netconf.Kind{
		Name:         "vlan",
		New:          func() any { return &Vlan{} },
		HostResource: true,
		Validate:     validateVlan,
	},
	Build: buildVlan,
	Flag: &Flag{
		Name:  "V",
		Arg:   "PARENT,VLANID",
		Usage: "a vlan sub-interface of PARENT",
		Parse: parseVlanFlag,
	},
}

func validateVlan(l *netconf.LinkSpec, field string) error {
	v := l.Spec.(*Vlan)
	if err := netconf.CheckIfName(v.Master); err != nil {
		return netconf.Invalid(field+".vlan.master", v.Master, err.Error())
	}
	if err := linkparam.CheckVLANID(v.ID); err != nil {
		return netconf.Invalid(field+".vlan.id", v.ID, err.Error())
	}
	return nil
}

func buildVlan(spec *netconf.LinkSpec, env Env) (Built, error) {
	s := spec.Spec.(*Vlan)
	v := &link.Vlan{End: podEnd(spec, env), Underlay: env.Host, Parent: s.Master, ID: s.ID, Marker: env.Marker}
	if err := parentMTU(&v.End, env, env.Field+".vlan.master", s.Master); err != nil {
		return Built{}, err
	}
	return Built{Link: v, Pod: &v.End}, nil
}

func parseVlanFlag(value string) (func(link.Endpoint, ns.NetNS, link.Marker) link.Link, error) {
	parent, idText, ok := strings.Cut(value, ",")
	id, err := strconv.Atoi(idText)
	if err == nil {
		err = linkparam.CheckVLANID(id)
	}
	if !ok || parent == "" || err != nil {
		return nil, fmt.Errorf("-V %q: want PARENT,VLANID with VLANID %d..%d", value, linkparam.MinVLANID, linkparam.MaxVLANID)
	}
	return func(end link.Endpoint, underlay ns.NetNS, m link.Marker) link.Link {
		return &link.Vlan{End: end, Underlay: underlay, Parent: parent, ID: id, Marker: m}
	}, nil
}
