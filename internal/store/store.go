// Package store keeps ratchet's state: which attachments (container,
// network, interface) exist, in which namespace, and what they own. The
// local store is embedded and on disk for one node.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/ratchet-cni/ratchet/internal/linkparam"
)

// AttachmentKey identifies a CNI attachment, as the runtime does.
type AttachmentKey struct {
	Network     string `json:"network"`
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
}

func (k AttachmentKey) String() string {
	return k.Network + "/" + k.ContainerID + "/" + k.IfName
}

// NetnsID identifies a network namespace: the device and inode of its
// nsfs file, the same whatever path names it.
type NetnsID struct {
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
}

// Attachment records what an ADD made, written before it makes anything so
// that a DEL or GC after a crash still finds it.
type Attachment struct {
	AttachmentKey
	// Netns is the pod's namespace path at ADD.
	Netns string `json:"netns"`
	// Marker is the alias prefix on every netdev the attachment owns.
	Marker string `json:"marker"`
	// Group is the netdev group of those netdevs.
	Group uint32 `json:"group"`
	// Pod is the pod the attachment belongs to.
	Pod string `json:"pod,omitempty"`
	// Delegated names the other plugin the attachment ran: "delegate" or
	// "bootNetwork" (Ratchet compatibility mode), or "".
	Delegated string `json:"delegated,omitempty"`
	// NetnsID is the identity of the namespace at Netns when ADD opened it
	// (nil in records of older versions): a path such as /proc/<pid>/ns/net
	// may name another namespace once the pid is reused, and DEL must not
	// act there.
	NetnsID *NetnsID `json:"netnsID,omitempty"`
	// PeerNetns are the namespaces of static peer.netns links, whose ends
	// outlive the pod's if its namespace is kept alive after the pod.
	PeerNetns []string `json:"peerNetns,omitempty"`
	// PeerNetnsIDs are their identities, in the same order.
	PeerNetnsIDs []NetnsID `json:"peerNetnsIDs,omitempty"`
	// Links are the interface names in the pod.
	Links   []string  `json:"links"`
	Created time.Time `json:"created"`
}

// Store is ratchet's state. Each call is atomic.
type Store interface {
	// Attachment returns the record for key, or (nil, nil).
	Attachment(ctx context.Context, key AttachmentKey) (*Attachment, error)
	// PutAttachment creates or replaces a record.
	PutAttachment(ctx context.Context, a *Attachment) error
	// DeleteAttachment removes a record; a missing one is not an error.
	DeleteAttachment(ctx context.Context, key AttachmentKey) error
	// Attachments lists the records of one network ("": of all networks).
	Attachments(ctx context.Context, network string) ([]*Attachment, error)
	Topology
	// Close releases the store.
	Close() error
}

// ErrUnavailable wraps failures to reach the store.
var ErrUnavailable = errors.New("store unavailable")

// PodRecord is a pod that is present on this node (its attachment exists).
type PodRecord struct {
	Pod        string        `json:"pod"`
	UID        string        `json:"uid,omitempty"`
	Attachment AttachmentKey `json:"attachment"`
	Netns      string        `json:"netns"`
	// NetnsID is the identity of the namespace at Netns when recorded.
	NetnsID *NetnsID `json:"netnsID,omitempty"`
	// LegacyPrimary is the pod a Ratchet pair consents to (it names it in
	// ratchet.pair_name): that primary's link may be completed in it.
	LegacyPrimary string `json:"legacyPrimary,omitempty"`
}

// LinkRecord is a pod-to-pod link between two pods' interfaces. It exists
// while at least one side declares it.
type LinkRecord struct {
	ID   string     `json:"id"`
	Ends [2]LinkEnd `json:"ends"`
	// Joined: the two ends have been stitched together at least once, so
	// an end left alone is parked (its peer went away), not pending.
	Joined bool `json:"joined,omitempty"`
	// LegacyPrimary names the pod that declared the whole link with
	// Ratchet's legacy keys; the other pod consents with ratchet: "true".
	LegacyPrimary string `json:"legacyPrimary,omitempty"`
	// Added: the node's administrator made the link on running pods
	// (`ratchetctl link add`); neither pod's annotation declares it, and
	// the ends' specs are recorded here. Each of its pods' ADDs re-makes
	// its end like a declared one: the link is the administrator's until
	// `ratchetctl link del`.
	Added bool `json:"added,omitempty"`
	// AddedAcross: an added link between pods on two nodes. The cluster
	// keeps its record (links/<id>/added): `ratchetctl link del` goes
	// through ratchetd, and the agent removes this node's end once the
	// record is gone.
	AddedAcross bool `json:"addedAcross,omitempty"`
	// Annotated: an added link across nodes that ratchetd made from its
	// pods' ratchet.cni.dev/links annotations (an edit of a running pod),
	// not the administrator: an annotation edit may remove it, never an
	// administrator's. (The cluster's added-link record still makes its
	// ends again at the pods' restarts, as for any added link across
	// nodes.) A link the annotations make between two pods of one node
	// is recorded as a declared one (Added false) instead.
	Annotated bool `json:"annotated,omitempty"`
	// Settings is the link's desired run-time state, set by `ratchetctl
	// link` and given to each new end before it is plugged in; nil: none.
	Settings *Settings `json:"settings,omitempty"`
}

// Settings is a link's desired run-time state: a pulled cable and
// impairments, applied in the parking namespace only (never in a pod).
// They are separate from the ends' declared netem (Spec), which the pods'
// interfaces carry.
type Settings struct {
	// Pulled: the cable is pulled; both parked ends stay down, and both
	// pods' interfaces without carrier, until `ratchetctl link up`.
	Pulled bool `json:"pulled,omitempty"`
	// Toward[i] impairs the traffic flowing toward end i's pod (it leaves
	// end i's parked netdev); nil: none.
	Toward [2]*linkparam.Impairment `json:"toward,omitempty"`
	// Mirror names the pod interface that gets a copy of every frame of
	// the link, both directions (`ratchetctl link mirror`); nil: none.
	Mirror *MirrorTarget `json:"mirror,omitempty"`
}

// MirrorTarget is a collector: the pod link end a mirrored link's frames
// are copied to, by name, as its parked netdev changes whenever its pod
// restarts.
type MirrorTarget struct {
	Pod    string `json:"pod"`
	IfName string `json:"ifName"`
}

func (t MirrorTarget) String() string { return t.Pod + ":" + t.IfName }

// MirrorsToKey is the meta key that lists the ids of the links mirrored
// to t, one a line: the collector's ADD finds them there (podlink keeps
// the list; DeleteLink drops a deleted link from it).
func MirrorsToKey(t MirrorTarget) string { return "mirrors-to/" + t.Pod + "\x00" + t.IfName }

// IsZero reports whether the settings ask for nothing.
func (s *Settings) IsZero() bool {
	return s == nil || !s.Pulled && s.Toward[0].IsZero() && s.Toward[1].IsZero() && s.Mirror == nil
}

// MirrorTo returns the record's collector, or nil when it is not mirrored.
func (r *LinkRecord) MirrorTo() *MirrorTarget {
	if r.Settings == nil {
		return nil
	}
	return r.Settings.Mirror
}

// Pulled reports whether the record's cable is pulled.
func (r *LinkRecord) Pulled() bool { return r.Settings != nil && r.Settings.Pulled }

// Toward returns the impairment of the traffic toward end i's pod, or nil.
func (r *LinkRecord) Toward(i int) *linkparam.Impairment {
	if r.Settings == nil || r.Settings.Toward[i].IsZero() {
		return nil
	}
	return r.Settings.Toward[i]
}

// LinkEnd is one pod's side of a link.
type LinkEnd struct {
	Pod    string `json:"pod"`
	IfName string `json:"ifName"`
	// Declared: this pod, present now, declares (consents to) the link.
	Declared bool `json:"declared,omitempty"`
	// Spec is the end's configuration (a netconf.LinkSpec) as declared.
	Spec json.RawMessage `json:"spec,omitempty"`
	// Attachment made this end; nil while the pod is gone.
	Attachment *AttachmentKey `json:"attachment,omitempty"`
	// Parked names the end's veth peer in the parking namespace, where the
	// two sides are stitched together.
	Parked      string `json:"parked,omitempty"`
	ParkedIndex int    `json:"parkedIndex,omitempty"`
}

// End returns the end of pod's interface ifName, and the other end; ok is
// false when neither end is pod's ifName (never the other end instead: a
// record that does not hold an end is not that end's to change).
func (r *LinkRecord) End(pod, ifName string) (mine, other *LinkEnd, ok bool) {
	switch {
	case r.Ends[0].Pod == pod && r.Ends[0].IfName == ifName:
		return &r.Ends[0], &r.Ends[1], true
	case r.Ends[1].Pod == pod && r.Ends[1].IfName == ifName:
		return &r.Ends[1], &r.Ends[0], true
	}
	return nil, nil, false
}

// Topology is the part of the store that pod links use.
type Topology interface {
	Pod(ctx context.Context, pod string) (*PodRecord, error)
	PutPod(ctx context.Context, p *PodRecord) error
	DeletePod(ctx context.Context, pod string) error
	Pods(ctx context.Context) ([]*PodRecord, error)

	// Link returns the record of id, or (nil, nil).
	Link(ctx context.Context, id string) (*LinkRecord, error)
	// PutLink writes a record and indexes it under each of its ends that
	// the end's pod declares or holds (Declared or Attachment): a pod's
	// index entries are its own links, never a link another pod declares
	// towards it and it has not taken up.
	PutLink(ctx context.Context, l *LinkRecord) error
	// PutLinks writes several records in one transaction.
	PutLinks(ctx context.Context, ls []*LinkRecord) error
	// DeleteLink removes a record, its index entries and its entry in its
	// collector's list (MirrorsToKey).
	DeleteLink(ctx context.Context, id string) error
	// LinksOf returns the records indexed under pod's ends: the links pod
	// declares or holds, or did until its last release.
	LinksOf(ctx context.Context, pod string) ([]*LinkRecord, error)
	// LinkAt returns the record indexed under pod's interface ifName, or
	// (nil, nil).
	LinkAt(ctx context.Context, pod, ifName string) (*LinkRecord, error)
	// Links returns every record.
	Links(ctx context.Context) ([]*LinkRecord, error)

	// Meta reads and writes small named values (such as the parking
	// namespace's path); a missing one reads as "", and writing ""
	// deletes it.
	Meta(ctx context.Context, key string) (string, error)
	PutMeta(ctx context.Context, key, value string) error
}
