package store

import (
	"context"
	"errors"
	"hash/fnv"
	"strings"
)

// The registry is the cluster-wide part of the state: which node each pod
// link end is on, each node's VTEP, and each cross-node link's VNI. Both
// stores implement it and pass one conformance suite (storetest); etcd's is
// the one that makes it cluster-wide. What a node made in its own kernel
// (attachments, parked ends, stitches) always stays in that node's local
// store: it describes that node only, and DEL must find it while etcd is
// unreachable.

// NodeRecord is a node of the cluster, as its agent announces it.
type NodeRecord struct {
	Name string `json:"name"`
	// VTEP is the node's underlay address, the remote of tunnels to it.
	VTEP string `json:"vtep"`
	// Port is the node's VXLAN UDP port.
	Port int `json:"port"`
}

// EndRecord is one pod's end of a pod link as the cluster sees it. The ADD
// that made the end registers it, for the node the pod runs on.
type EndRecord struct {
	Pod        string        `json:"pod"`
	IfName     string        `json:"ifName"`
	PeerPod    string        `json:"peerPod"`
	PeerIfName string        `json:"peerIfName"`
	Node       string        `json:"node"`
	Attachment AttachmentKey `json:"attachment"`
}

// LinkID is the id of the link e declares.
func (e *EndRecord) LinkID() string {
	id, _ := LinkID(e.Pod, e.IfName, e.PeerPod, e.PeerIfName)
	return id
}

// Declares reports whether e names other's interface as its peer. A link
// between two ends exists when each declares the other: mutual consent.
func (e *EndRecord) Declares(other *EndRecord) bool {
	return e.PeerPod == other.Pod && e.PeerIfName == other.IfName
}

// LinkID names a pod link by its two ends in a canonical order, so that
// both pods compute the same id. aFirst says whether the (podA, ifA) end
// comes first in it. The id is "podA|ifA~podB|ifB" with '%', '|' and '~'
// inside a name escaped (%25, %7C, %7E), so that no two links share an id
// whatever their names: "x~ns/b|y" as an interface name cannot pass for a
// separator. Names without those characters (every valid pod and pod-link
// interface name) appear as they are, so ids stored before the escaping
// are unchanged.
func LinkID(podA, ifA, podB, ifB string) (id string, aFirst bool) {
	a, b := escapeIDPart(podA)+"|"+escapeIDPart(ifA), escapeIDPart(podB)+"|"+escapeIDPart(ifB)
	if a < b {
		return a + "~" + b, true
	}
	return b + "~" + a, false
}

var idEscaper = strings.NewReplacer("%", "%25", "|", "%7C", "~", "%7E")

func escapeIDPart(s string) string {
	if !strings.ContainsAny(s, "%|~") {
		return s
	}
	return idEscaper.Replace(s)
}

// unescapeIDPart reverses escapeIDPart; ok is false for a part that
// escapeIDPart cannot have made.
func unescapeIDPart(s string) (string, bool) {
	if !strings.Contains(s, "%") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+3 > len(s) {
			return "", false
		}
		switch s[i : i+3] {
		case "%25":
			b.WriteByte('%')
		case "%7C":
			b.WriteByte('|')
		case "%7E":
			b.WriteByte('~')
		default:
			return "", false
		}
		i += 2
	}
	return b.String(), true
}

// ParseLinkID returns the two ends of a link id as LinkID made it; ok is
// false for an id LinkID cannot have made.
func ParseLinkID(id string) (podA, ifA, podB, ifB string, ok bool) {
	a, b, found := strings.Cut(id, "~")
	if !found || strings.Contains(b, "~") {
		return "", "", "", "", false
	}
	podA, ifA, okA := strings.Cut(a, "|")
	podB, ifB, okB := strings.Cut(b, "|")
	if !okA || !okB || podA == "" || podB == "" || strings.Contains(ifA, "|") || strings.Contains(ifB, "|") {
		return "", "", "", "", false
	}
	parts := [4]*string{&podA, &ifA, &podB, &ifB}
	for _, p := range parts {
		v, ok := unescapeIDPart(*p)
		if !ok {
			return "", "", "", "", false
		}
		*p = v
	}
	return podA, ifA, podB, ifB, true
}

// Registry is the cluster-wide state. Every method is one atomic
// transaction and safe to repeat.
type Registry interface {
	// RegisterEnds records one attachment's ends, replacing earlier
	// registrations of the same pod interfaces (a pod that came back,
	// possibly on another node). Each end's record stands alone: they may
	// be written in several transactions (etcd bounds a transaction's size).
	RegisterEnds(ctx context.Context, ends []*EndRecord) error
	// UnregisterEnds removes the ends of pod's interfaces ifNames that the
	// attachment key made on node. An end that a later registration
	// replaced (the pod came back elsewhere first) stays.
	UnregisterEnds(ctx context.Context, node string, key AttachmentKey, pod string, ifNames []string) error
	// End returns the end of pod's interface ifName, or (nil, nil). In a
	// cluster it looks only on nodes that announced themselves (PutNode):
	// an end elsewhere is found by Ends, which a node's announcement makes
	// every agent read again. Of several registrations of one interface
	// (the pod moved, its old node has not withdrawn it yet) End and Ends
	// return the newest.
	End(ctx context.Context, pod, ifName string) (*EndRecord, error)
	// Ends returns every registered end.
	Ends(ctx context.Context) ([]*EndRecord, error)

	// PutNode announces a node; Node returns one, or (nil, nil).
	PutNode(ctx context.Context, n *NodeRecord) error
	Node(ctx context.Context, name string) (*NodeRecord, error)

	// AllocateVNI returns the VNI of link id, allocating a free one in
	// [first, last] if it has none: create-if-absent on the VNI's key with
	// id as its value, so that concurrent allocations anywhere in the
	// cluster never share a VNI. Both ends' agents may call it at once;
	// they get the same VNI.
	AllocateVNI(ctx context.Context, id string, first, last uint32) (uint32, error)
	// VNI returns link id's VNI, or 0 when it has none.
	VNI(ctx context.Context, id string) (uint32, error)
	// VNIs maps every allocated VNI to its link id.
	VNIs(ctx context.Context) (map[uint32]string, error)
	// ReleaseVNI frees link id's VNI unless an end of the link is
	// registered (its pods came back), in one transaction with that check;
	// a link with no VNI, or one whose id does not tell its ends (see
	// ParseLinkID), is left alone, with no error.
	ReleaseVNI(ctx context.Context, id string) error

	Close() error
}

// Change says that something in a registry changed (a registry that can
// be watched reports it; etcd's does). It is a hint: the
// consumer re-reads what it names (End, Node, VNI), so a change delivered
// twice or one that the consumer's read already saw does no harm.
type Change struct {
	// Kind is "end", "node", "vni", "settings" (a link's run-time
	// settings) or "added" (an added link's record); "" with Resync.
	Kind string
	// Pod and IfName name the end (Kind "end").
	Pod, IfName string
	// Node names the node (Kind "node"), or the node whose record of
	// the end changed (Kind "end": the end may be on another node now).
	Node string
	// LinkID names the link whose VNI, settings or added-link record
	// changed (Kind "vni", "settings", "added").
	LinkID string
	// Deleted: the record is gone (else it was created or replaced).
	Deleted bool
	// Resync: the watch was (re)established after a read of the cluster's
	// revision R, and delivers every change after R. The consumer must
	// re-read everything (Ends, and the nodes and VNIs it cares about):
	// a read that starts after it receives the Resync sees at least R, so
	// together with the changes that follow nothing is missed.
	Resync bool
}

// ErrSettingsChanged says that a link's run-time settings in the cluster
// changed between the read a change was based on and its write: someone
// else (another node's ratchetctl) changed them; read them again and redo
// the change.
var ErrSettingsChanged = errors.New("the link's run-time settings changed meanwhile")

// ErrVNIExhausted says that every VNI of the range is taken.
var ErrVNIExhausted = errors.New("no free VNI in the range")

// FirstCandidateVNI is where the search for a free VNI for link id starts:
// a hash of the id spreads allocations over the range, so that concurrent
// allocations rarely contend for the same key.
func FirstCandidateVNI(id string, first, last uint32) uint32 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return first + uint32(h.Sum64()%uint64(last-first+1))
}
