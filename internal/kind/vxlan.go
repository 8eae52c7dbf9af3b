package kind

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/linkparam"
	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// VXLAN is the "vxlan" sub-object of a link: a tunnel to a fixed remote
// VTEP (network config only).
type VXLAN struct {
	Remote string `json:"remote"`
	VNI    int    `json:"vni"`
	// Port is the UDP port; 0 means the config's vxlan.port.
	Port int `json:"port,omitempty"`
	// Dev is the underlay device; empty means node.vtepDev, then the
	// device of the route to Remote.
	Dev string `json:"dev,omitempty"`
}

// vxlanUnit is a VXLAN tunnel end in the pod. An end without an MTU gets
// the config's vxlan.mtu or else the underlay device's MTU less the
// encapsulation overhead (50 bytes over IPv4, 70 over IPv6), which CHECK
// compares.
var vxlanUnit = Unit{
	Kind: netconf.Kind{
		Name:         "vxlan",
		New:          func() any { return &VXLAN{} },
		HostResource: true,
		Validate:     validateVXLAN,
	},
	Build: buildVXLAN,
	Flag: &Flag{
		Name:  "x",
		Arg:   "PARENT,REMOTE,VNI[,port=N]",
		Usage: "a vxlan end on PARENT to REMOTE",
		Parse: parseVXLANFlag,
	},
}

func validateVXLAN(l *netconf.LinkSpec, field string) error {
	v := l.Spec.(*VXLAN)
	if net.ParseIP(v.Remote) == nil {
		return netconf.Invalid(field+".vxlan.remote", v.Remote, "not an IP address")
	}
	if err := linkparam.CheckVNI(v.VNI); err != nil {
		return netconf.Invalid(field+".vxlan.vni", v.VNI, err.Error())
	}
	if v.Port != 0 {
		if err := linkparam.CheckPort(v.Port); err != nil {
			return netconf.Invalid(field+".vxlan.port", v.Port, err.Error())
		}
	}
	if v.Dev != "" {
		if err := netconf.CheckIfName(v.Dev); err != nil {
			return netconf.Invalid(field+".vxlan.dev", v.Dev, err.Error())
		}
	}
	return nil
}

func buildVXLAN(spec *netconf.LinkSpec, env Env) (Built, error) {
	s, c := spec.Spec.(*VXLAN), env.Conf
	v := &link.Vxlan{
		End:      podEnd(spec, env),
		Underlay: env.Host,
		Dev:      firstNonEmpty(s.Dev, c.Node.VtepDev),
		VNI:      s.VNI,
		Remote:   net.ParseIP(s.Remote),
		Local:    net.ParseIP(c.Node.VtepIP),
		Port:     s.Port,
		Marker:   env.Marker,
	}
	if v.Port == 0 {
		v.Port = c.VXLAN.Port
	}
	if v.End.MTU == 0 {
		v.End.MTU = c.VXLAN.MTU
	}
	// At ADD Create fills in the automatic MTU itself.
	if v.End.MTU == 0 && env.Check {
		mtu, err := v.AutoMTU(env.Kernel)
		if err != nil {
			return Built{}, types.NewError(netconf.ErrCheckFailed, fmt.Sprintf("%s.vxlan: %v", env.Field, err), "")
		}
		v.End.MTU = mtu
	}
	return Built{Link: v, Pod: &v.End}, nil
}

func parseVXLANFlag(value string) (func(link.Endpoint, ns.NetNS, link.Marker) link.Link, error) {
	parts := strings.Split(value, ",")
	if len(parts) < 3 || len(parts) > 4 || parts[0] == "" {
		return nil, fmt.Errorf("-x %q: want PARENT,REMOTE,VNI[,port=N]", value)
	}
	parent := parts[0]
	remote := net.ParseIP(parts[1])
	if remote == nil {
		return nil, fmt.Errorf("-x %q: remote %q is not an IP address", value, parts[1])
	}
	vni, err := strconv.Atoi(parts[2])
	if err == nil {
		err = linkparam.CheckVNI(vni)
	}
	if err != nil {
		return nil, fmt.Errorf("-x %q: VNI %q must be 1..%d", value, parts[2], linkparam.MaxVNI)
	}
	port := 0
	if len(parts) == 4 {
		p, ok := strings.CutPrefix(parts[3], "port=")
		port, err = strconv.Atoi(p)
		if err == nil {
			err = linkparam.CheckPort(port)
		}
		if !ok || err != nil {
			return nil, fmt.Errorf("-x %q: %q must be port=1..%d", value, parts[3], linkparam.MaxPort)
		}
	}
	return func(end link.Endpoint, underlay ns.NetNS, m link.Marker) link.Link {
		return &link.Vxlan{End: end, Underlay: underlay, Dev: parent, Remote: remote, VNI: vni, Port: port, Marker: m}
	}, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
