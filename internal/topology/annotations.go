package topology

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	// The kind units register the peer kinds (peer.pod among them) that
	// LinkSpec.Validate checks annotation links against.
	_ "github.com/ratchet-cni/ratchet/internal/kind"
	"github.com/ratchet-cni/ratchet/internal/netconf"
)

// Annotation keys.
const (
	// LinksAnnotation holds a JSON array of LinkSpec with peer.pod only.
	LinksAnnotation = "ratchet.cni.dev/links"
	// MaxAnnotationBytes bounds LinksAnnotation (Kubernetes bounds all of a
	// pod's annotations together to 256 KiB).
	MaxAnnotationBytes = 256 << 10
)

// Ratchet's legacy keys: the primary pod declares both ends of one link,
// the pair consents with ratchet: "true" and its primary's name in
// ratchet.pair_name. A bare IP means /24. They are read only where the
// network config sets legacyKeys (Rules.LegacyKeys).
const (
	legacyEnabled     = "ratchet"
	legacyPodName     = "ratchet.pod_name"
	legacyPairName    = "ratchet.pair_name"
	legacyLocalIP     = "ratchet.local_ip"
	legacyLocalIfName = "ratchet.local_ifname"
	legacyPairIP      = "ratchet.pair_ip"
	legacyPairIfName  = "ratchet.pair_ifname"
	legacyPrimary     = "ratchet.primary"
)

// legacyKeys are all of Ratchet's keys, in the order a refusal names them.
var legacyKeys = []string{legacyEnabled, legacyPodName, legacyPrimary, legacyPairName,
	legacyLocalIfName, legacyLocalIP, legacyPairIfName, legacyPairIP}

// Rules are what the network config lets a pod's annotations declare.
type Rules struct {
	// AllowCrossNamespace lets a link name a peer in another namespace.
	AllowCrossNamespace bool
	// LegacyKeys honours Ratchet's keys; without it any of them is refused.
	LegacyKeys bool
	// MaxLinks bounds the links of one pod.
	MaxLinks int
}

// Link is a pod link as one pod declares it: its own end (Spec, whose
// Peer names the peer pod and the peer's interface), and for Ratchet's
// legacy keys the peer's end too.
type Link struct {
	Spec netconf.LinkSpec
	Peer PodID
	// PeerEnd is the peer's end as a legacy primary declares it; the peer
	// consents by carrying ratchet: "true" and naming this pod in its
	// ratchet.pair_name.
	PeerEnd *netconf.LinkSpec
}

// Declaration is everything a pod's annotations say about pod links.
type Declaration struct {
	Links []Link
	// LegacyConsent: the pod is a Ratchet pair (LegacyPrimary is set), so
	// the link its primary declares towards it may be completed in it.
	LegacyConsent bool
	// LegacyPrimary is the pod ("namespace/name") that this pod, a Ratchet
	// pair, names in ratchet.pair_name: the one primary it consents to.
	LegacyPrimary string
}

// Names returns the pod's interface names of the declared links.
func (d *Declaration) Names() []string {
	names := make([]string, len(d.Links))
	for i, l := range d.Links {
		names[i] = l.Spec.Name
	}
	return names
}

// Declared reads the pod links in annotations. Every link is checked as an
// annotation link: it may only name a pod peer, never a host resource; a
// peer in another namespace needs AllowCrossNamespace, and Ratchet's keys
// need LegacyKeys.
func Declared(annotations map[string]string, self PodID, rules Rules) (*Declaration, error) {
	maxLinks := rules.MaxLinks
	d := &Declaration{}
	if raw, ok := annotations[LinksAnnotation]; ok {
		links, err := parseLinks(raw, self, rules.AllowCrossNamespace, maxLinks)
		if err != nil {
			return nil, err
		}
		d.Links = links
	}
	legacy, primary, err := parseLegacy(annotations, self, rules.LegacyKeys)
	if err != nil {
		return nil, err
	}
	d.LegacyPrimary, d.LegacyConsent = primary, primary != ""
	if legacy != nil {
		for _, l := range d.Links {
			if l.Spec.Name == legacy.Spec.Name {
				return nil, invalid(legacyLocalIfName, legacy.Spec.Name, "is also a link in "+LinksAnnotation)
			}
		}
		d.Links = append(d.Links, *legacy)
	}
	if len(d.Links) > maxLinks {
		return nil, invalid(LinksAnnotation, fmt.Sprintf("(%d links)", len(d.Links)), fmt.Sprintf("more than maxLinksPerPod (%d)", maxLinks))
	}
	return d, nil
}

func invalid(key string, value any, why string) error {
	return netconf.Invalid("annotation "+key, value, why)
}

func parseLinks(raw string, self PodID, allowCrossNamespace bool, maxLinks int) ([]Link, error) {
	if len(raw) > MaxAnnotationBytes {
		return nil, invalid(LinksAnnotation, fmt.Sprintf("(%d bytes)", len(raw)), fmt.Sprintf("larger than %d bytes", MaxAnnotationBytes))
	}
	var items []json.RawMessage
	if err := json.Unmarshal([]byte(raw), &items); err != nil {
		return nil, invalid(LinksAnnotation, abbreviate(raw), "not a JSON array of links: "+err.Error())
	}
	if len(items) > maxLinks {
		return nil, invalid(LinksAnnotation, fmt.Sprintf("(%d links)", len(items)), fmt.Sprintf("more than maxLinksPerPod (%d)", maxLinks))
	}
	links := make([]Link, 0, len(items))
	seen := map[string]int{}
	for i, item := range items {
		field := fmt.Sprintf("annotation %s[%d]", LinksAnnotation, i)
		var spec netconf.LinkSpec
		dec := json.NewDecoder(bytes.NewReader(item))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&spec); err != nil {
			return nil, netconf.Invalid(field, abbreviate(string(item)), err.Error())
		}
		if spec.Name == "" {
			return nil, netconf.Invalid(field+".name", "", "a pod link needs a name")
		}
		if err := spec.Validate(field, netconf.Annotation); err != nil {
			return nil, err
		}
		if spec.Peer == nil || spec.Peer.Pod == "" {
			return nil, netconf.Invalid(field+".peer.pod", "", "a pod link names its peer pod")
		}
		peer := PodID{Namespace: spec.Peer.Namespace, Name: spec.Peer.Pod}
		if peer.Namespace == "" {
			peer.Namespace = self.Namespace
		}
		if peer.Namespace != self.Namespace && !allowCrossNamespace {
			return nil, types.NewError(types.ErrInvalidNetworkConfig,
				fmt.Sprintf("%s.peer.namespace %q: links across namespaces need allowCrossNamespace in the network config", field, peer.Namespace), "")
		}
		if peer == (PodID{Namespace: self.Namespace, Name: self.Name}) {
			return nil, netconf.Invalid(field+".peer.pod", spec.Peer.Pod, "a pod cannot link to itself")
		}
		if j, dup := seen[spec.Name]; dup {
			return nil, netconf.Invalid(field+".name", spec.Name, fmt.Sprintf("links[%d] has the same name", j))
		}
		seen[spec.Name] = i
		links = append(links, Link{Spec: spec, Peer: peer})
	}
	return links, nil
}

// parseLegacy reads Ratchet's keys. It returns the link a primary declares,
// or for a pair the primary it consents to ("namespace/name").
//
// Ratchet let a pair consent with ratchet: "true" alone, to any primary:
// any pod of the namespace could then put an interface with an address of
// its choosing into any running pod that carried it. Here a pair consents
// only to the primary it names in its own ratchet.pair_name, and only
// where the network config trusts the namespace's pods with the keys.
func parseLegacy(a map[string]string, self PodID, enabled bool) (*Link, string, error) {
	if !enabled {
		for _, k := range legacyKeys {
			if v, ok := a[k]; ok {
				return nil, "", invalid(k, v, `Ratchet's keys are honoured only where the network config sets "legacyKeys": true`)
			}
		}
		return nil, "", nil
	}
	if a[legacyEnabled] != "true" {
		for _, k := range []string{legacyPrimary, legacyPairName, legacyLocalIfName} {
			if _, ok := a[k]; ok {
				return nil, "", invalid(k, a[k], `Ratchet's keys take effect only with ratchet: "true"`)
			}
		}
		return nil, "", nil
	}
	if name, ok := a[legacyPodName]; ok && name != self.Name {
		return nil, "", invalid(legacyPodName, name, fmt.Sprintf("is not this pod's name (%s)", self.Name))
	}
	if a[legacyPrimary] != "true" {
		primary := a[legacyPairName]
		switch {
		case primary == "":
			return nil, "", invalid(legacyPairName, "", "a Ratchet pair names its primary pod here: that is its consent to the primary's link")
		case !netconf.IsDNSName(primary) || len(primary) > 253 || primary == self.Name:
			return nil, "", invalid(legacyPairName, primary, "not another pod's name")
		}
		return nil, PodID{Namespace: self.Namespace, Name: primary}.String(), nil
	}
	for _, k := range []string{legacyPairName, legacyLocalIfName, legacyPairIfName} {
		if a[k] == "" {
			return nil, "", invalid(k, "", "a Ratchet primary declares "+legacyPairName+", "+legacyLocalIfName+" and "+legacyPairIfName)
		}
	}
	local, err := legacyEnd(legacyLocalIfName, a[legacyLocalIfName], legacyLocalIP, a[legacyLocalIP])
	if err != nil {
		return nil, "", err
	}
	pair, err := legacyEnd(legacyPairIfName, a[legacyPairIfName], legacyPairIP, a[legacyPairIP])
	if err != nil {
		return nil, "", err
	}
	peer := PodID{Namespace: self.Namespace, Name: a[legacyPairName]}
	if !netconf.IsDNSName(peer.Name) || len(peer.Name) > 253 || peer.Name == self.Name {
		return nil, "", invalid(legacyPairName, peer.Name, "not another pod's name")
	}
	local.Peer = &netconf.Peer{Pod: peer.Name, Name: pair.Name}
	if err := local.Validate("annotation "+legacyLocalIfName, netconf.Annotation); err != nil {
		return nil, "", err
	}
	pair.Peer = &netconf.Peer{Pod: self.Name, Name: local.Name}
	if err := pair.Validate("annotation "+legacyPairIfName, netconf.Annotation); err != nil {
		return nil, "", err
	}
	return &Link{Spec: *local, Peer: peer, PeerEnd: pair}, "", nil
}

// legacyEnd builds one end from Ratchet's keys: a bare IPv4 address means
// /24, as in Ratchet (which had no IPv6; a bare IPv6 address means /64).
func legacyEnd(nameKey, name, ipKey, ip string) (*netconf.LinkSpec, error) {
	if err := netconf.CheckPodLinkName(name); err != nil {
		return nil, invalid(nameKey, name, err.Error())
	}
	spec := &netconf.LinkSpec{Name: name}
	if ip != "" {
		if !strings.Contains(ip, "/") {
			addr := net.ParseIP(ip)
			switch {
			case addr == nil:
				return nil, invalid(ipKey, ip, "not an IP address")
			case addr.To4() != nil:
				ip += "/24"
			default:
				ip += "/64"
			}
		}
		spec.IPs = []string{ip}
	}
	return spec, nil
}

func abbreviate(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

// StaticPodLinks returns the peer.pod links of a network config (as in a
// per-pod network attachment) as pod links of self.
func StaticPodLinks(specs []netconf.LinkSpec, self PodID, allowCrossNamespace bool) ([]Link, error) {
	var links []Link
	for i, spec := range specs {
		if spec.Kind() != netconf.KindPod {
			continue
		}
		peer := PodID{Namespace: spec.Peer.Namespace, Name: spec.Peer.Pod}
		if peer.Namespace == "" {
			peer.Namespace = self.Namespace
		}
		field := fmt.Sprintf("links[%d]", i)
		if peer.Namespace != self.Namespace && !allowCrossNamespace {
			return nil, netconf.Invalid(field+".peer.namespace", peer.Namespace, "links across namespaces need allowCrossNamespace")
		}
		if peer.Namespace == self.Namespace && peer.Name == self.Name {
			return nil, netconf.Invalid(field+".peer.pod", peer.Name, "a pod cannot link to itself")
		}
		links = append(links, Link{Spec: spec, Peer: peer})
	}
	return links, nil
}
