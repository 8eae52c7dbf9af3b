package netconf

import (
	"fmt"
	"net"
	"path/filepath"
	"unicode"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/pkg/link"
)

// LinkSpec declares one link of a pod: its local end and exactly one peer
// kind (peer.pod, peer.netns, vxlan or macvlan).
type LinkSpec struct {
	Name    string       `json:"name,omitempty"`
	IPs     []string     `json:"ips,omitempty"`
	MAC     string       `json:"mac,omitempty"`
	MTU     int          `json:"mtu,omitempty"`
	Routes  []RouteSpec  `json:"routes,omitempty"`
	Netem   *NetemSpec   `json:"netem,omitempty"`
	Peer    *Peer        `json:"peer,omitempty"`
	VXLAN   *VXLANPeer   `json:"vxlan,omitempty"`
	Macvlan *MacvlanPeer `json:"macvlan,omitempty"`

	local, remote link.Endpoint
}

// RouteSpec is a route through a link end.
type RouteSpec struct {
	Dst string `json:"dst"`
	GW  string `json:"gw,omitempty"`
}

// NetemSpec impairs a link end, in tc's notation.
type NetemSpec struct {
	Delay  string `json:"delay,omitempty"`
	Jitter string `json:"jitter,omitempty"`
	Loss   string `json:"loss,omitempty"`
	Rate   string `json:"rate,omitempty"`
}

// Peer is the other end of a veth link: another pod (by name), or a
// network namespace (netconf only) with the peer end's own settings.
type Peer struct {
	Pod       string `json:"pod,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Netns     string `json:"netns,omitempty"`

	Name   string      `json:"name,omitempty"`
	IPs    []string    `json:"ips,omitempty"`
	MAC    string      `json:"mac,omitempty"`
	MTU    int         `json:"mtu,omitempty"`
	Routes []RouteSpec `json:"routes,omitempty"`
}

// VXLANPeer is a tunnel to a fixed remote VTEP (netconf only).
type VXLANPeer struct {
	Remote string `json:"remote"`
	VNI    int    `json:"vni"`
	Port   int    `json:"port,omitempty"`
	Dev    string `json:"dev,omitempty"`
}

// MacvlanPeer puts the link end on a node device (netconf only).
type MacvlanPeer struct {
	Master string `json:"master"`
	Mode   string `json:"mode,omitempty"`
}

// Link kinds, as LinkSpec.Kind names them.
const (
	KindPod     = "pod"
	KindNetns   = "netns"
	KindVXLAN   = "vxlan"
	KindMacvlan = "macvlan"
)

// Source says where a LinkSpec came from, which decides what it may name.
type Source int

const (
	// Static links come from the network config, written by the admin.
	Static Source = iota
	// Annotation links come from pod annotations, written by any user who
	// can create a pod: they may not name host resources.
	Annotation
)

// Kind returns the peer kind of a validated spec.
func (l *LinkSpec) Kind() string {
	switch {
	case l.VXLAN != nil:
		return KindVXLAN
	case l.Macvlan != nil:
		return KindMacvlan
	case l.Peer != nil && l.Peer.Netns != "":
		return KindNetns
	}
	return KindPod
}

// Local returns the parsed local end of a validated spec, with no namespace.
func (l *LinkSpec) Local() link.Endpoint { return l.local }

// Remote returns the parsed peer end of a validated peer.netns spec.
func (l *LinkSpec) Remote() link.Endpoint { return l.remote }

// Validate checks every field; field is the spec's place in the input, used
// in error messages ("links[2]").
func (l *LinkSpec) Validate(field string, src Source) error {
	if src == Annotation {
		if err := rejectHostResources(l, field); err != nil {
			return err
		}
	}
	kinds := 0
	if l.Peer != nil {
		if l.Peer.Pod != "" {
			kinds++
		}
		if l.Peer.Netns != "" {
			kinds++
		}
		if l.Peer.Pod == "" && l.Peer.Netns == "" {
			return Invalid(field+".peer", "{}", "needs pod or netns")
		}
	}
	if l.VXLAN != nil {
		kinds++
	}
	if l.Macvlan != nil {
		kinds++
	}
	if kinds != 1 {
		return Invalid(field, l.Name, fmt.Sprintf("has %d peer kinds; want exactly one of peer.pod, peer.netns, vxlan, macvlan", kinds))
	}
	var err error
	if l.local, err = parseEnd(field, l.Name, l.IPs, l.MAC, l.MTU, l.Routes); err != nil {
		return err
	}
	if l.Netem != nil {
		n := l.Netem
		if l.local.Netem, err = link.ParseNetem(n.Delay, n.Jitter, n.Loss, n.Rate); err != nil {
			return Invalid(field+".netem", fmt.Sprintf("%+v", *n), err.Error())
		}
	}
	switch l.Kind() {
	case KindPod:
		return l.validatePodPeer(field)
	case KindNetns:
		return l.validateNetnsPeer(field)
	case KindVXLAN:
		return l.validateVXLAN(field)
	default:
		return l.validateMacvlan(field)
	}
}

func rejectHostResources(l *LinkSpec, field string) error {
	host := ""
	switch {
	case l.Peer != nil && l.Peer.Netns != "":
		host = field + ".peer.netns"
	case l.VXLAN != nil:
		host = field + ".vxlan"
	case l.Macvlan != nil:
		host = field + ".macvlan"
	}
	if host != "" {
		return types.NewError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf("%s is not allowed in pod annotations: annotations may only link pods (peer.pod), never host resources", host), "")
	}
	return nil
}

func (l *LinkSpec) validatePodPeer(field string) error {
	p := l.Peer
	if !IsDNSName(p.Pod) || len(p.Pod) > 253 {
		return Invalid(field+".peer.pod", p.Pod, "not a Kubernetes object name")
	}
	if p.Namespace != "" && (!IsDNSName(p.Namespace) || len(p.Namespace) > 63) {
		return Invalid(field+".peer.namespace", p.Namespace, "not a Kubernetes namespace name")
	}
	if p.Name == "" {
		return Invalid(field+".peer.name", "", "a pod link names the peer's interface (the peer must declare the link back with this name)")
	}
	if err := CheckIfName(p.Name); err != nil {
		return Invalid(field+".peer.name", p.Name, err.Error())
	}
	if len(p.IPs) > 0 || p.MAC != "" || p.MTU != 0 || len(p.Routes) > 0 {
		return Invalid(field+".peer", p.Pod, "a pod peer configures its own end; peer.ips/mac/mtu/routes are for peer.netns")
	}
	return nil
}

func (l *LinkSpec) validateNetnsPeer(field string) error {
	p := l.Peer
	if p.Namespace != "" {
		return Invalid(field+".peer.namespace", p.Namespace, "only a pod peer has a namespace")
	}
	if filepath.IsAbs(p.Netns) {
		if filepath.Clean(p.Netns) != p.Netns {
			return Invalid(field+".peer.netns", p.Netns, "not a clean path")
		}
	} else if _, err := link.NetnsPath("name", p.Netns); err != nil {
		return Invalid(field+".peer.netns", p.Netns, "neither an absolute path nor an `ip netns` name")
	}
	name := p.Name
	if name == "" {
		name = l.Name
	}
	var err error
	l.remote, err = parseEnd(field+".peer", name, p.IPs, p.MAC, p.MTU, p.Routes)
	return err
}

func (l *LinkSpec) validateVXLAN(field string) error {
	v := l.VXLAN
	if net.ParseIP(v.Remote) == nil {
		return Invalid(field+".vxlan.remote", v.Remote, "not an IP address")
	}
	if v.VNI < 1 || v.VNI > MaxVNI {
		return Invalid(field+".vxlan.vni", v.VNI, fmt.Sprintf("must be 1..%d", MaxVNI))
	}
	if v.Port < 0 || v.Port > 65535 {
		return Invalid(field+".vxlan.port", v.Port, "must be 1..65535")
	}
	if v.Dev != "" {
		if err := CheckIfName(v.Dev); err != nil {
			return Invalid(field+".vxlan.dev", v.Dev, err.Error())
		}
	}
	return nil
}

func (l *LinkSpec) validateMacvlan(field string) error {
	m := l.Macvlan
	if err := CheckIfName(m.Master); err != nil {
		return Invalid(field+".macvlan.master", m.Master, err.Error())
	}
	if _, ok := link.MacvlanModes[m.Mode]; m.Mode != "" && !ok {
		return Invalid(field+".macvlan.mode", m.Mode, "want bridge, private, vepa or passthru")
	}
	return nil
}

// IsDNSName reports whether s matches ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$, the
// shape of Kubernetes object and namespace names (lengths are checked by
// the callers). It is written out rather than a regexp: a package-level
// regexp is compiled at every process start, VERSION included.
func IsDNSName(s string) bool {
	if s == "" || !isLowerAlnum(s[0]) || !isLowerAlnum(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if c := s[i]; !isLowerAlnum(c) && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
}

func parseEnd(field, name string, ips []string, mac string, mtu int, routes []RouteSpec) (link.Endpoint, error) {
	end := link.Endpoint{Name: name}
	if err := CheckIfName(name); err != nil {
		return end, Invalid(field+".name", name, err.Error())
	}
	for i, s := range ips {
		ip, ipn, err := net.ParseCIDR(s)
		if err != nil {
			return end, Invalid(fmt.Sprintf("%s.ips[%d]", field, i), s, "not a CIDR (address/prefix, like 192.0.2.1/24)")
		}
		ipn.IP = ip
		end.Addrs = append(end.Addrs, ipn)
	}
	if mac != "" {
		hw, err := net.ParseMAC(mac)
		if err != nil || len(hw) != 6 {
			return end, Invalid(field+".mac", mac, "not a 6-byte MAC address")
		}
		if hw[0]&1 != 0 || hw.String() == "00:00:00:00:00:00" {
			return end, Invalid(field+".mac", mac, "not a unicast address")
		}
		end.MAC = hw
	}
	if mtu != 0 {
		if err := checkMTU(mtu); err != nil {
			return end, Invalid(field+".mtu", mtu, err.Error())
		}
		end.MTU = mtu
	}
	for i, r := range routes {
		f := fmt.Sprintf("%s.routes[%d]", field, i)
		_, dst, err := net.ParseCIDR(r.Dst)
		if err != nil {
			return end, Invalid(f+".dst", r.Dst, "not a CIDR")
		}
		route := link.Route{Dst: dst}
		if r.GW != "" {
			if route.GW = net.ParseIP(r.GW); route.GW == nil {
				return end, Invalid(f+".gw", r.GW, "not an IP address")
			}
			if (route.GW.To4() == nil) != (dst.IP.To4() == nil) {
				return end, Invalid(f+".gw", r.GW, "is not of the same family as dst "+r.Dst)
			}
		}
		end.Routes = append(end.Routes, route)
	}
	return end, nil
}

func checkMTU(mtu int) error {
	if mtu < 68 || mtu > 65535 {
		return fmt.Errorf("must be 68..65535")
	}
	return nil
}

// CheckIfName applies the kernel's rules for interface names: 1 to 15
// bytes, no '/', ':' or white space, and not "." or "..".
func CheckIfName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("interface name is empty")
	case len(name) > 15:
		return fmt.Errorf("interface name is longer than 15 bytes")
	case name == "." || name == "..":
		return fmt.Errorf("interface name cannot be . or ..")
	}
	for _, r := range name {
		if r == '/' || r == ':' || r == 0 || unicode.IsSpace(r) {
			return fmt.Errorf("interface name contains %q", r)
		}
	}
	return nil
}
