package netconf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"unicode"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/linkparam"
)

// LinkSpec declares one link of a pod: its local end and exactly one peer
// kind. The peer kinds are registered (see Kind): peer.pod and peer.netns
// in the peer object, and the kinds with a sub-object of their own (vxlan,
// macvlan, vlan) under their name. LinkSpec holds the generic parts; each
// kind's unit (internal/kind) holds its sub-object and its validation.
type LinkSpec struct {
	Name   string      `json:"name,omitempty"`
	IPs    []string    `json:"ips,omitempty"`
	MAC    string      `json:"mac,omitempty"`
	MTU    int         `json:"mtu,omitempty"`
	Routes []RouteSpec `json:"routes,omitempty"`
	Netem  *NetemSpec  `json:"netem,omitempty"`
	Peer   *Peer       `json:"peer,omitempty"`

	// Spec is the decoded sub-object of a kind that has one (a pointer
	// from that Kind's New); nil for the peer kinds.
	Spec any `json:"-"`
	// subKinds are the kinds whose sub-objects the JSON carried, in input
	// order; Validate insists on exactly one kind in all.
	subKinds []string

	local End
}

// linkSpecJSON is LinkSpec's generic part as JSON, decoded strictly.
type linkSpecJSON struct {
	Name   string      `json:"name,omitempty"`
	IPs    []string    `json:"ips,omitempty"`
	MAC    string      `json:"mac,omitempty"`
	MTU    int         `json:"mtu,omitempty"`
	Routes []RouteSpec `json:"routes,omitempty"`
	Netem  *NetemSpec  `json:"netem,omitempty"`
	Peer   *Peer       `json:"peer,omitempty"`
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

// End is the parsed local (or peer.netns) end of a validated spec, free of
// any kernel type: the kind units turn it into a link.Endpoint.
type End struct {
	Name  string
	Addrs []*net.IPNet
	MAC   net.HardwareAddr
	// MTU is 0 when the spec sets none: the kind's default applies.
	MTU    int
	Routes []Route
	Netem  *linkparam.Netem
}

// Route is a parsed route through an end.
type Route struct {
	Dst *net.IPNet
	GW  net.IP
}

// The peer kinds every build knows by name: pod links are made by the
// pod-link code, not by a kind unit's link.
const (
	KindPod   = "pod"
	KindNetns = "netns"
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

// UnmarshalJSON decodes the generic fields and the sub-object of every
// registered kind, refusing unknown fields at every level (a misspelt key
// would otherwise be silently ignored). A key that is no registered kind
// is an unknown field.
func (l *LinkSpec) UnmarshalJSON(b []byte) error {
	*l = LinkSpec{}
	// Most links (every pod link) name no kind with a sub-object: their
	// JSON is the generic part as it stands, decoded in one pass.
	if !mentionsSubKind(b) {
		return l.setGeneric(b)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return err
	}
	var kindKeys []string
	for key := range obj {
		if k, ok := lookupKind(key); ok && k.New != nil {
			kindKeys = append(kindKeys, key)
		}
	}
	rest := b
	if len(kindKeys) > 0 {
		if len(kindKeys) > 1 {
			// In input order, so that the first one names the kind.
			kindKeys = objectKeys(b, kindKeys)
		}
		for _, key := range kindKeys {
			raw := obj[key]
			delete(obj, key)
			if string(raw) == "null" {
				continue
			}
			k, _ := lookupKind(key)
			spec := k.New()
			if err := strictUnmarshal(raw, spec); err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
			if l.Spec == nil {
				l.Spec = spec
			}
			l.subKinds = append(l.subKinds, k.Name)
		}
		var err error
		if rest, err = json.Marshal(obj); err != nil {
			return err
		}
	}
	return l.setGeneric(rest)
}

// setGeneric decodes the generic part, strictly.
func (l *LinkSpec) setGeneric(b []byte) error {
	var g linkSpecJSON
	if err := strictUnmarshal(b, &g); err != nil {
		return err
	}
	l.Name, l.IPs, l.MAC, l.MTU, l.Routes, l.Netem, l.Peer = g.Name, g.IPs, g.MAC, g.MTU, g.Routes, g.Netem, g.Peer
	return nil
}

// mentionsSubKind reports whether b holds the quoted name of a kind with
// a sub-object anywhere: a cheap test that lets the rest skip a pass.
func mentionsSubKind(b []byte) bool {
	for _, k := range registeredKinds() {
		if k.New != nil && bytes.Contains(b, k.quoted) {
			return true
		}
	}
	return false
}

// objectKeys returns those of keys that b, a JSON object, has at its top
// level, in b's order.
func objectKeys(b []byte, keys []string) []string {
	var ordered []string
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil {
		return keys
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return keys
		}
		key, _ := t.(string)
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return keys
		}
		if slices.Contains(keys, key) && !slices.Contains(ordered, key) {
			ordered = append(ordered, key)
		}
	}
	return ordered
}

// MarshalJSON writes the generic fields and the kind's sub-object under
// its name.
func (l LinkSpec) MarshalJSON() ([]byte, error) {
	g := linkSpecJSON{Name: l.Name, IPs: l.IPs, MAC: l.MAC, MTU: l.MTU, Routes: l.Routes, Netem: l.Netem, Peer: l.Peer}
	b, err := json.Marshal(g)
	if err != nil || l.Spec == nil || len(l.subKinds) == 0 {
		return b, err
	}
	sub, err := json.Marshal(l.Spec)
	if err != nil {
		return nil, err
	}
	key, _ := json.Marshal(l.subKinds[0])
	if string(b) == "{}" {
		return fmt.Appendf(nil, "{%s:%s}", key, sub), nil
	}
	return fmt.Appendf(nil, "%s,%s:%s}", b[:len(b)-1], key, sub), nil
}

// SetSpec makes spec, a pointer from the New of the kind named kind, the
// spec's sub-object: how code (rather than JSON) declares such a link.
func (l *LinkSpec) SetSpec(kind string, spec any) {
	l.Spec, l.subKinds = spec, []string{kind}
}

// kinds returns the kinds the spec declares: its sub-objects', then the
// peer kinds its peer object selects.
func (l *LinkSpec) kinds() []string {
	found := append([]string(nil), l.subKinds...)
	if l.Peer != nil {
		for _, k := range registeredKinds() {
			if k.InPeer != nil && k.InPeer(l.Peer) {
				found = append(found, k.Name)
			}
		}
	}
	return found
}

// Kind returns the peer kind of a validated spec.
func (l *LinkSpec) Kind() string {
	if found := l.kinds(); len(found) > 0 {
		return found[0]
	}
	return KindPod
}

// Local returns the parsed local end of a validated spec.
func (l *LinkSpec) Local() End { return l.local }

// Validate checks every field; field is the spec's place in the input, used
// in error messages ("links[2]"). The generic parts are checked here, the
// kind's part by the kind's own Validate.
func (l *LinkSpec) Validate(field string, src Source) error {
	found := l.kinds()
	if src == Annotation {
		for _, name := range found {
			if k, _ := lookupKind(name); k.HostResource {
				return types.NewError(types.ErrInvalidNetworkConfig,
					fmt.Sprintf("%s.%s is not allowed in pod annotations: annotations may only link pods (peer.pod), never host resources", field, k.Field()), "")
			}
		}
	}
	if l.Peer != nil && l.Peer.Pod == "" && l.Peer.Netns == "" {
		return Invalid(field+".peer", "{}", "needs pod or netns")
	}
	if len(found) != 1 {
		return Invalid(field, l.Name, fmt.Sprintf("has %d peer kinds; want exactly one of %s", len(found), kindFields()))
	}
	var err error
	if l.local, err = ParseEnd(field, l.Name, l.IPs, l.MAC, l.MTU, l.Routes); err != nil {
		return err
	}
	if l.Netem != nil {
		n := l.Netem
		if l.local.Netem, err = linkparam.ParseNetem(n.Delay, n.Jitter, n.Loss, n.Rate); err != nil {
			return Invalid(field+".netem", fmt.Sprintf("%+v", *n), err.Error())
		}
	}
	k, _ := lookupKind(found[0])
	return k.Validate(l, field)
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

// ParseEnd parses one end of a link; field is its place in the input
// ("links[2]" or "links[2].peer").
func ParseEnd(field, name string, ips []string, mac string, mtu int, routes []RouteSpec) (End, error) {
	end := End{Name: name}
	if err := CheckIfName(name); err != nil {
		return end, Invalid(field+".name", name, err.Error())
	}
	// Counted before anything is parsed: a 15,000-address annotation is
	// refused without 15,000 parses.
	if err := linkparam.CheckAddrCount(len(ips)); err != nil {
		return end, Invalid(field+".ips", fmt.Sprintf("(%d addresses)", len(ips)), err.Error())
	}
	if err := linkparam.CheckRouteCount(len(routes)); err != nil {
		return end, Invalid(field+".routes", fmt.Sprintf("(%d routes)", len(routes)), err.Error())
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
		if err := linkparam.CheckMTU(mtu); err != nil {
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
		route := Route{Dst: dst}
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

// CheckPodLinkName checks the name of a pod link's interface (either end):
// a valid interface name (CheckIfName) made only of letters, digits, '_',
// '.' and '-'. Pod-link names are parts of link ids and store keys, where a
// separator inside a name could make two links' ids equal.
func CheckPodLinkName(name string) error {
	if err := CheckIfName(name); err != nil {
		return err
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isPodLinkNameByte(c) {
			return fmt.Errorf("a pod link's interface name is made of letters, digits, '_', '.' and '-'; it contains %q", rune(c))
		}
	}
	return nil
}

func isPodLinkNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-'
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
