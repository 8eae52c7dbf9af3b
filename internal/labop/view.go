package labop

import (
	"context"
	"fmt"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/parking"
	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// Lab is the node's pods and pod links as its local store and parking
// namespace show them at one moment.
type Lab struct {
	Pods  []*store.PodRecord
	Links []podlink.LinkView
	// ParkingPath is the parking namespace's path ("" before the node's
	// first pod link).
	ParkingPath string
	// Parking is the parking namespace, open while View's fn runs (nil:
	// none yet).
	Parking ns.NetNS
}

// StoreError is View's failure to open the local store; callers name the
// directory by their own flag.
type StoreError struct {
	Dir string
	Err error
}

func (e *StoreError) Error() string { return fmt.Sprintf("store %s: %v", e.Dir, e.Err) }
func (e *StoreError) Unwrap() error { return e.Err }

// View reads the node's lab from the local store in dir, waiting at most
// wait for the node lock (0: as long as it takes), with each link's
// counters when withStats, and calls fn with it. The lock is held until
// fn returns, so that no ADD or DEL changes the lab while fn reads the
// kernel (`ratchetctl links`, events, the topology page, the Kubernetes
// status all see records and netdevs of the same moment).
func View(ctx context.Context, dir string, wait time.Duration, withStats bool, fn func(*Lab) error) error {
	st, err := store.OpenLocalWithin(ctx, dir, wait)
	if err != nil {
		return &StoreError{Dir: dir, Err: err}
	}
	defer st.Close()
	lab := &Lab{}
	if lab.Pods, err = st.Pods(ctx); err != nil {
		return err
	}
	lab.ParkingPath, _ = st.Meta(ctx, parking.MetaKey)
	if lab.Parking = podlink.OpenParkingOf(ctx, st); lab.Parking != nil {
		defer lab.Parking.Close()
	}
	view := podlink.ViewLinks
	if withStats {
		view = podlink.ViewLinkStats
	}
	if lab.Links, err = view(ctx, st, lab.Parking); err != nil {
		return err
	}
	return fn(lab)
}

// Document is the node's lab as `ratchetctl links -o json` prints it and
// the topology page reads it: a small document meant to stay stable
// (fields are added, never renamed).
type Document struct {
	Pods  []DocPod  `json:"pods"`
	Links []DocLink `json:"links"`
}

// DocPod is a pod registered on the node.
type DocPod struct {
	Pod        string `json:"pod"`
	Netns      string `json:"netns"`
	Attachment string `json:"attachment"`
}

// DocLink is one pod link with its state, run-time settings and counters.
type DocLink struct {
	ID    string        `json:"id"`
	State podlink.State `json:"state"`
	Added bool          `json:"added,omitempty"`
	Ends  [2]DocEnd     `json:"ends"`
	// Settings are the run-time settings (store.Settings); absent: none.
	Settings *store.Settings `json:"settings,omitempty"`
	// Stats are there when the views were read with their counters.
	Stats *podlink.LinkStats `json:"stats,omitempty"`
}

// DocEnd is one end of a link: a pod and its interface.
type DocEnd struct {
	Pod    string `json:"pod"`
	IfName string `json:"ifName"`
}

// DocumentOf is the document of pods and views. JSON escapes control
// characters itself, so names need no quoting here.
func DocumentOf(pods []*store.PodRecord, views []podlink.LinkView) Document {
	doc := Document{Pods: []DocPod{}, Links: []DocLink{}}
	for _, p := range pods {
		doc.Pods = append(doc.Pods, DocPod{Pod: p.Pod, Netns: p.Netns, Attachment: p.Attachment.String()})
	}
	for _, v := range views {
		l := DocLink{ID: v.ID, State: v.State, Added: v.Added, Stats: v.Stats}
		if !v.Settings.IsZero() {
			l.Settings = v.Settings
		}
		for i, e := range v.Ends {
			l.Ends[i] = DocEnd{Pod: e.Pod, IfName: e.IfName}
		}
		doc.Links = append(doc.Links, l)
	}
	return doc
}
