package labop

import (
	"context"
	"errors"
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
	// none yet, or gone).
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
// counters when withStats, and calls fn with it.
//
// The node lock is held only while the store is read (the pods, the link
// records and the parking namespace's path): it is released before the
// kernel is asked, and before fn runs, so that an ADD or DEL waits at
// most for that read, never for a dump of the parking namespace or for
// fn. What fn gets is the records of one moment and the netdevs of a
// moment later: a link added or deleted in between reads as the kernel
// has it then (pending or broken, say) until the next view. Callers
// that must not see a lab change under them (the live-lab operations)
// take the lock themselves (Open), not View.
func View(ctx context.Context, dir string, wait time.Duration, withStats bool, fn func(*Lab) error) error {
	lab, recs, err := readRecords(ctx, dir, wait)
	if err != nil {
		return err
	}
	if lab.ParkingPath != "" {
		// A namespace gone with a reboot: every link reads as without a
		// parking namespace.
		if n, err := ns.GetNS(lab.ParkingPath); err == nil {
			lab.Parking = n
			defer n.Close()
		}
	}
	if lab.Links, err = podlink.ViewRecords(recs, lab.Parking, withStats); err != nil {
		return fmt.Errorf("parking namespace %s: %w", lab.ParkingPath, err)
	}
	return fn(lab)
}

// readRecords reads the pods, the link records and the parking
// namespace's path under the node lock, and releases it.
func readRecords(ctx context.Context, dir string, wait time.Duration) (lab *Lab, recs []*store.LinkRecord, err error) {
	st, err := store.OpenLocalWithin(ctx, dir, wait)
	if err != nil {
		return nil, nil, &StoreError{Dir: dir, Err: err}
	}
	defer func() { err = errors.Join(err, st.Close()) }()
	lab = &Lab{}
	if lab.Pods, err = st.Pods(ctx); err != nil {
		return nil, nil, err
	}
	if recs, err = st.Links(ctx); err != nil {
		return nil, nil, err
	}
	if lab.ParkingPath, err = st.Meta(ctx, parking.MetaKey); err != nil {
		return nil, nil, err
	}
	return lab, recs, nil
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
