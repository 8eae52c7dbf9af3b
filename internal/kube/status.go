package kube

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strings"

	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/internal/podlink"
)

// NetworkStatusAnnotation is Multus's pod annotation: a JSON list with one
// entry per network attachment. Multus owns it where it runs, so ratchet
// merges its own entries in (see MergeNetworkStatus) rather than writing
// the whole list.
const NetworkStatusAnnotation = "k8s.v1.cni.cncf.io/network-status"

// EntryPrefix starts the name of every network-status entry ratchet
// writes ("ratchet.cni.dev/<interface>"). Multus names its entries
// "<namespace>/<network>" or a network's name; a namespace is a DNS label,
// with no dot, so no entry of Multus's can start with it.
const EntryPrefix = "ratchet.cni.dev/"

// deviceInfoVersion is the version of the device-info object
// (Multus's device-info specification).
const deviceInfoVersion = "1.1.0"

// Entry is one network-status entry, in Multus's format.
type Entry struct {
	Name       string      `json:"name"`
	Interface  string      `json:"interface,omitempty"`
	IPs        []string    `json:"ips,omitempty"`
	MAC        string      `json:"mac,omitempty"`
	DeviceInfo *DeviceInfo `json:"device-info,omitempty"`
}

// DeviceInfo is ratchet's device-info of a pod link end: Type is
// "ratchet"; Peer the other end ("namespace/pod:interface"), Kind "veth"
// (both pods on this node) or "vxlan" (the peer on another node), VNI the
// tunnel's where known, and State the link's state as `ratchetctl links`
// shows it.
type DeviceInfo struct {
	Type    string `json:"type"`
	Version string `json:"version"`
	Peer    string `json:"peer"`
	Kind    string `json:"kind"`
	VNI     uint32 `json:"vni,omitempty"`
	State   string `json:"state"`
}

// Link is one pod link of this node as Links reports it: its view (ends,
// state) and the MAC of each end's pod interface that this node holds.
type Link struct {
	podlink.LinkView
	MAC [2]string
	// VNI is the tunnel's VNI of a link to another node, 0 if unknown.
	VNI uint32
}

// Entries returns pod's network-status entries (pod is "namespace/name"):
// one per end of links that pod holds on this node, by interface name.
func Entries(pod string, links []Link) []Entry {
	var out []Entry
	for _, l := range links {
		for i, e := range l.Ends {
			if e.Pod != pod || e.Attachment == nil {
				continue
			}
			other := l.Ends[1-i]
			kind := "veth"
			if l.State == podlink.StateRemote {
				kind = "vxlan"
			}
			ent := Entry{Name: EntryPrefix + e.IfName, Interface: e.IfName, MAC: l.MAC[i],
				DeviceInfo: &DeviceInfo{Type: "ratchet", Version: deviceInfoVersion,
					Peer: other.Pod + ":" + other.IfName, Kind: kind, VNI: l.VNI, State: string(l.State)}}
			var spec netconf.LinkSpec
			if len(e.Spec) > 0 && json.Unmarshal(e.Spec, &spec) == nil {
				for _, ip := range spec.IPs {
					// Multus lists addresses without their prefix length.
					if addr, _, err := net.ParseCIDR(ip); err == nil {
						ent.IPs = append(ent.IPs, addr.String())
					} else if addr := net.ParseIP(ip); addr != nil {
						ent.IPs = append(ent.IPs, addr.String())
					}
				}
			}
			out = append(out, ent)
		}
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Interface, b.Interface) })
	return out
}

// MergeNetworkStatus returns the network-status annotation's new value:
// the entries of cur (the annotation's value, "" when absent) that others
// wrote, in their order, followed by ours; every entry ratchet wrote
// before (its name starts with EntryPrefix) is replaced. remove is true
// when nothing is left and the annotation should go. When the entries
// would not change (compared parsed, not as strings), cur is returned as
// it is: a pod is never patched for a mere change of layout, such as
// Multus's pretty-printed value. A value that is not a JSON list of
// objects is an error: it is someone else's, and left alone.
func MergeNetworkStatus(cur string, ours []Entry) (value string, remove bool, err error) {
	var items []json.RawMessage
	if strings.TrimSpace(cur) != "" {
		if err := json.Unmarshal([]byte(cur), &items); err != nil {
			return "", false, fmt.Errorf("annotation %s: not a JSON list: %w", NetworkStatusAnnotation, err)
		}
	}
	kept := make([]json.RawMessage, 0, len(items)+len(ours))
	for i, it := range items {
		var named struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(it, &named); err != nil {
			return "", false, fmt.Errorf("annotation %s[%d]: not an object: %w", NetworkStatusAnnotation, i, err)
		}
		if !strings.HasPrefix(named.Name, EntryPrefix) {
			kept = append(kept, it)
		}
	}
	for _, e := range ours {
		b, err := json.Marshal(e)
		if err != nil {
			return "", false, err
		}
		kept = append(kept, b)
	}
	if sameEntries(items, kept) {
		// Nothing to change: cur is returned as it is, whatever its
		// layout, so that a pod with no ratchet link (or with the same
		// entries) is never patched for a reformat.
		return cur, false, nil
	}
	if len(kept) == 0 {
		return "", cur != "", nil
	}
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, it := range kept {
		if i > 0 {
			buf.WriteByte(',')
		}
		// Others' entries keep their content; their layout is compacted.
		if err := json.Compact(&buf, it); err != nil {
			return "", false, err
		}
	}
	buf.WriteByte(']')
	return buf.String(), false, nil
}

// sameEntries tells whether two lists of JSON values hold the same
// values in the same order, whatever their layout: the comparison of
// parsed values, not of strings (a pretty-printed Multus value equals its
// compacted form).
func sameEntries(a, b []json.RawMessage) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		var x, y any
		if json.Unmarshal(a[i], &x) != nil || json.Unmarshal(b[i], &y) != nil || !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}
