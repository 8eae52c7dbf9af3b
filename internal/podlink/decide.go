package podlink

import (
	"github.com/ratchet-cni/ratchet/internal/linkparam"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// The events that move a pod link on each have a decision function:
//   - a pod's ADD declares (or consents to) its end: OnAdd;
//   - the DEL or GC of the attachment that made an end: OnRelease;
//   - a CHECK of the attachment that holds an end: OnCheck;
//   - the node agent finds the peer registered on another node, with a
//     tunnel to go to it: OnPeerRegistered;
//   - the node agent takes an end's tunnel out of service, as its remote
//     peer went or came to this node: OnPeerGone.

// Action is one step that moves a link on. Kernel actions are applied by
// an Executor; record actions by the caller, which owns the store.
type Action int

// Actions. A Step's End names the end (0 or 1, as in the record) it acts on.
const (
	// UnplugStale sets down the parked netdev an earlier incarnation of
	// the end's pod left behind.
	UnplugStale Action = iota
	// ForgetEnd marks the end gone in the record: its parked netdev has
	// vanished (its pod's namespace went without a DEL) or was released.
	ForgetEnd
	// MakeEnd creates the end's veth: its interface in the pod, its parked
	// end, down, in the parking namespace.
	MakeEnd
	// Stitch joins the end's parked netdev to the other end's.
	Stitch
	// Plug sets the end's parked netdev up: the pod's cable is plugged in.
	Plug
	// Unplug sets the end's parked netdev down: the pod's carrier goes.
	Unplug
	// Tunnel stitches the end's parked netdev to its VXLAN tunnel.
	Tunnel
	// VerifyEnd checks the end's interface and its parked netdev, which
	// waits, down, for a peer.
	VerifyEnd
	// VerifyJoined checks the end's interface and its parked netdev, up
	// and stitched to the other end's.
	VerifyJoined
	// Pull sets the end's parked netdev down for a pulled cable.
	Pull
	// Restore sets the end's parked netdev up again: the cable is back.
	Restore
	// Impair gives the end's parked netdev the impairment the record asks
	// for the traffic toward the end's pod (Decision.Next), or clears it.
	Impair
	// VerifyImpairment checks that the end's parked netdev carries the
	// impairment the record asks for.
	VerifyImpairment
	// Mirror copies the frames arriving on the end's parked netdev to the
	// collector's (Decision.Collector), or stops the copies when that is
	// 0 (no mirror, or no collector here).
	Mirror
	// VerifyMirror checks that the end's parked netdev mirrors to the
	// collector's (Decision.Collector).
	VerifyMirror
	// PutRecord writes the record (Decision.Next).
	PutRecord
	// DeleteRecord removes the record: nobody declares or holds the link.
	DeleteRecord
)

var actionNames = [...]string{"unplug-stale", "forget-end", "make-end", "stitch", "plug", "unplug", "tunnel",
	"verify-end", "verify-joined", "pull", "restore", "impair", "verify-impairment", "mirror", "verify-mirror",
	"put-record", "delete-record"}

func (a Action) String() string {
	if a < 0 || int(a) >= len(actionNames) {
		return "action?"
	}
	return actionNames[a]
}

// Step is one action on one end.
type Step struct {
	Action Action
	End    int
}

// Decision is what an event does to a link: the steps, in order, the
// record as it is once they are taken, and the state the link is then in
// (StateNone when the record is deleted). Next's made ends carry the
// attachment but no parked netdev yet: the Executor fills that in.
type Decision struct {
	Steps []Step
	Next  store.LinkRecord
	State State
	// Collector is the parked ifindex the Mirror and VerifyMirror steps
	// mirror to: the collector's, as observed (Observation.Collector), or
	// 0 for no mirror.
	Collector int
}

// StateNone is the state of a link whose record is deleted.
const StateNone State = ""

// Has reports whether the decision takes action a on end.
func (d *Decision) Has(a Action, end int) bool {
	for _, s := range d.Steps {
		if s.Action == a && s.End == end {
			return true
		}
	}
	return false
}

// OnAdd decides what the ADD of attachment key does to its end mine of
// rec: unplug what an earlier incarnation left, forget a peer end whose
// parked netdev vanished, make the end, and, when the peer declares the
// link and is present, stitch the two and plug both in (the plugs are
// taken last, once the ADD has made all of its ends). The caller sets
// mine's Declared and Spec first. obs needs Parked of every end whose
// record has an attachment. The new end gets the link's run-time settings
// before it is plugged in: its impairment first, its mirror (when the
// collector is here: obs.Collector), and a pulled cable is stitched but
// not plugged (both ends stay down until OnRestore).
func OnAdd(rec *store.LinkRecord, mine int, key store.AttachmentKey, obs Observation) Decision {
	d := Decision{Next: clone(rec)}
	m, o := &d.Next.Ends[mine], &d.Next.Ends[1-mine]
	if m.Attachment != nil && obs.Ends[mine].Parked {
		d.Steps = append(d.Steps, Step{UnplugStale, mine})
	}
	if o.Attachment != nil && !obs.Ends[1-mine].Parked {
		d.Steps = append(d.Steps, Step{ForgetEnd, 1 - mine})
		forget(o)
	}
	joined := Joinable(o, obs.Ends[1-mine])
	d.Steps = append(d.Steps, Step{MakeEnd, mine})
	forget(m)
	k := key
	m.Attachment = &k
	if rec.Toward(mine) != nil {
		d.Steps = append(d.Steps, Step{Impair, mine})
	}
	if rec.MirrorTo() != nil && obs.Collector != 0 {
		d.Steps = append(d.Steps, Step{Mirror, mine})
		d.Collector = obs.Collector
	}
	if joined {
		d.Steps = append(d.Steps, Step{Stitch, mine})
		if !rec.Pulled() {
			d.Steps = append(d.Steps, Step{Plug, mine}, Step{Plug, 1 - mine})
		}
		d.Next.Joined = true
	}
	d.State = predict(&d, obs)
	return d
}

// OnRelease decides what the DEL or GC of attachment key does to pod's
// ends of rec: each end the attachment made is forgotten (its veth goes
// with the attachment's netdevs), and the peer's cable is unplugged. That
// holds also after an ADD killed before it recorded its ends, which may
// have plugged the peer in already. A record nobody declares or holds any
// more is deleted. parking says whether the node has a parking namespace
// (with none, there is nothing to unplug).
func OnRelease(rec *store.LinkRecord, pod string, key store.AttachmentKey, parking bool) Decision {
	d := Decision{Next: clone(rec)}
	obs := Observation{Parking: parking}
	changed := false
	for i := range d.Next.Ends {
		end, other := &d.Next.Ends[i], &d.Next.Ends[1-i]
		if end.Pod != pod {
			continue
		}
		if end.Attachment != nil && *end.Attachment == key {
			d.Steps = append(d.Steps, Step{ForgetEnd, i})
			forget(end)
			end.Declared = false
			changed = true
		}
		if end.Attachment == nil && other.Attachment != nil && parking {
			d.Steps = append(d.Steps, Step{Unplug, 1 - i})
		}
	}
	// Release looks at no netdev: the ends it leaves are as they were,
	// stitched to each other if both are there.
	for i, e := range d.Next.Ends {
		obs.Ends[i].Parked = e.Attachment != nil
		obs.Ends[i].StitchedTo = d.Next.Ends[1-i].ParkedIndex
	}
	switch {
	case !changed:
	case declaredOrPresent(&d.Next):
		d.Steps = append(d.Steps, Step{PutRecord, 0})
	default:
		d.Steps = append(d.Steps, Step{DeleteRecord, 0})
	}
	d.State = predict(&d, obs)
	return d
}

// OnCheck decides what a CHECK verifies of end mine of rec: the end
// alone, or, when the peer declares the link and is present, the end
// stitched to it. obs needs Parked of the other end. Run-time settings
// are intended, not drift: the parked end of a pulled link may be down,
// and the end must carry the impairment the record asks for toward it,
// and mirror to the collector when that is here (obs.Collector; with the
// collector gone, there is nothing to copy to, and nothing to check).
func OnCheck(rec *store.LinkRecord, mine int, obs Observation) Decision {
	d := Decision{Next: clone(rec)}
	if Joinable(&rec.Ends[1-mine], obs.Ends[1-mine]) {
		d.Steps = []Step{{VerifyJoined, mine}}
	} else {
		d.Steps = []Step{{VerifyEnd, mine}}
	}
	if rec.Toward(mine) != nil {
		d.Steps = append(d.Steps, Step{VerifyImpairment, mine})
	}
	if rec.MirrorTo() != nil && obs.Collector != 0 {
		d.Steps = append(d.Steps, Step{VerifyMirror, mine})
		d.Collector = obs.Collector
	}
	d.State = StateOf(rec, obs)
	return d
}

// OnPeerRegistered decides what the node agent does when end mine's peer
// is registered on another node and its tunnel can be made: give the end
// the link's run-time settings as the cluster holds them (want, in rec's
// end order; nil: none), stitch it to the tunnel, and plug it in unless
// the cable is pulled (then it is set down: each node unplugs its own end,
// so both pods lose carrier). The impairment comes first, before the end
// is plugged; the record takes want, so that CHECK and `ratchetctl links`
// on this node show what the cluster asks. The agent decides this on every
// look at the link: each step is safe to repeat, and an unchanged
// impairment is not touched.
func OnPeerRegistered(rec *store.LinkRecord, mine int, want *store.Settings, obs Observation) Decision {
	d := Decision{Next: clone(rec)}
	d.Next.Settings = nil
	if !want.IsZero() {
		s := *want
		d.Next.Settings = &s
	}
	if m := rec.MirrorTo(); m != nil {
		// The mirror is this node's (the cluster does not hold it): it
		// stays, on the end's parked netdev, which the tunnel leaves.
		settings(&d.Next).Mirror = m
	}
	if !sameImpairment(rec.Toward(mine), d.Next.Toward(mine)) {
		d.Steps = append(d.Steps, Step{Impair, mine})
	}
	d.Steps = append(d.Steps, Step{Tunnel, mine})
	if d.Next.Pulled() {
		d.Steps = append(d.Steps, Step{Pull, mine})
	} else {
		d.Steps = append(d.Steps, Step{Plug, mine})
	}
	if !sameSettings(rec, &d.Next) {
		d.Steps = append(d.Steps, Step{PutRecord, 0})
	}
	d.State = predict(&d, obs)
	return d
}

// sameSettings reports whether a and b ask for the same run-time settings.
func sameSettings(a, b *store.LinkRecord) bool {
	return a.Pulled() == b.Pulled() && sameImpairment(a.Toward(0), b.Toward(0)) && sameImpairment(a.Toward(1), b.Toward(1)) &&
		sameMirror(a.MirrorTo(), b.MirrorTo())
}

func sameMirror(a, b *store.MirrorTarget) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

// OnPeerGone decides what the node agent does when it takes end mine's
// tunnel out of service. With the peer gone from the cluster, the cable
// is unplugged; with the peer now on this node (recorded here: the
// plugin stitched the two ends), the end is stitched to it again unless
// obs shows the stitch is there (the tunnel may have taken this end's
// side of it).
func OnPeerGone(rec *store.LinkRecord, mine int, obs Observation) Decision {
	d := Decision{Next: clone(rec)}
	m, o := &rec.Ends[mine], &rec.Ends[1-mine]
	if obs.Ends[mine].ToTunnel {
		// The tunnel is gone, and its redirect with it.
		obs.Ends[mine].StitchedTo, obs.Ends[mine].ToTunnel = 0, false
	}
	switch {
	case !Recorded(o):
		d.Steps = []Step{{Unplug, mine}}
	case obs.Ends[mine].StitchedTo != o.ParkedIndex || obs.Ends[1-mine].StitchedTo != m.ParkedIndex:
		d.Steps = []Step{{Stitch, mine}}
	}
	d.State = predict(&d, obs)
	return d
}

// OnPull decides what `ratchetctl link down` does: the record says the
// cable is pulled, and each end that is there is set down, so that both
// pods' interfaces lose their carrier. obs needs Parked of every end whose
// record has an attachment.
func OnPull(rec *store.LinkRecord, obs Observation) Decision {
	d := Decision{Next: clone(rec)}
	settings(&d.Next).Pulled = true
	d.onPresentEnds(rec, obs, Pull)
	d.Steps = append(d.Steps, Step{PutRecord, 0})
	d.State = predict(&d, obs)
	return d
}

// OnRestore decides what `ratchetctl link up` does: the record forgets
// the pull, and when both pods declare the link and are there, both ends
// (stitched while pulled) are set up again. A lone end stays down, waiting
// for its peer as any parked end does.
func OnRestore(rec *store.LinkRecord, obs Observation) Decision {
	d := Decision{Next: clone(rec)}
	settings(&d.Next).Pulled = false
	tidy(&d.Next)
	if Joinable(&rec.Ends[0], obs.Ends[0]) && Joinable(&rec.Ends[1], obs.Ends[1]) {
		d.Steps = append(d.Steps, Step{Restore, 0}, Step{Restore, 1})
	}
	d.Steps = append(d.Steps, Step{PutRecord, 0})
	d.State = predict(&d, obs)
	return d
}

// OnImpair decides what `ratchetctl link set` does: the record takes the
// impairments toward each end's pod (nil: none), and each end that is
// there and whose impairment changes gets it on its parked netdev.
func OnImpair(rec *store.LinkRecord, toward [2]*linkparam.Impairment, obs Observation) Decision {
	d := Decision{Next: clone(rec)}
	for i := range toward {
		if toward[i].IsZero() {
			toward[i] = nil
		}
	}
	settings(&d.Next).Toward = toward
	tidy(&d.Next)
	for i := range rec.Ends {
		if Present(&rec.Ends[i], obs.Ends[i]) && !sameImpairment(rec.Toward(i), d.Next.Toward(i)) {
			d.Steps = append(d.Steps, Step{Impair, i})
		}
	}
	d.Steps = append(d.Steps, Step{PutRecord, 0})
	d.State = predict(&d, obs)
	return d
}

// OnReset decides what `ratchetctl link reset` does: every impairment
// goes, and the mirror (a pulled cable stays pulled: that is `link up`'s).
func OnReset(rec *store.LinkRecord, obs Observation) Decision {
	d := OnImpair(rec, [2]*linkparam.Impairment{}, obs)
	if rec.MirrorTo() == nil {
		return d
	}
	m := OnMirror(&d.Next, nil, obs)
	d.Steps = append(d.Steps[:len(d.Steps)-1], m.Steps...) // one PutRecord, last
	d.Next, d.State = m.Next, m.State
	return d
}

// OnMirror decides what `ratchetctl link mirror` (to: the collector) and
// `link unmirror` (nil to) do: the record takes the mirror, and each end
// that is there mirrors to the collector's parked netdev (obs.Collector;
// 0 when the collector is not here: no copies, until it comes) or stops.
// The mirror is not a state: the link's traffic is the same.
func OnMirror(rec *store.LinkRecord, to *store.MirrorTarget, obs Observation) Decision {
	d := Decision{Next: clone(rec)}
	if to != nil {
		t := *to
		settings(&d.Next).Mirror = &t
		d.Collector = obs.Collector
	} else if d.Next.Settings != nil {
		d.Next.Settings.Mirror = nil
		tidy(&d.Next)
	}
	d.onPresentEnds(rec, obs, Mirror)
	d.Steps = append(d.Steps, Step{PutRecord, 0})
	d.State = predict(&d, obs)
	return d
}

// OnCollectorBack decides what the ADD of a collector does to a link
// mirrored to it: each end that is there mirrors to the collector's new
// parked netdev (obs.Collector), as the one it mirrored to went with the
// collector's last incarnation. The record does not change.
func OnCollectorBack(rec *store.LinkRecord, obs Observation) Decision {
	d := Decision{Next: clone(rec)}
	if rec.MirrorTo() != nil && obs.Collector != 0 {
		d.onPresentEnds(rec, obs, Mirror)
		d.Collector = obs.Collector
	}
	d.State = StateOf(rec, obs)
	return d
}

func sameImpairment(a, b *linkparam.Impairment) bool {
	return a.IsZero() && b.IsZero() || a != nil && b != nil && *a == *b
}

// settings returns r's settings, made if it had none (r is a decision's
// own copy: clone copied its settings).
// onPresentEnds adds action on each end of rec that is there: run-time
// settings act on the parked ends of the pods present, never on a gone
// pod's.
func (d *Decision) onPresentEnds(rec *store.LinkRecord, obs Observation, action Action) {
	for i := range rec.Ends {
		if Present(&rec.Ends[i], obs.Ends[i]) {
			d.Steps = append(d.Steps, Step{action, i})
		}
	}
}

func settings(r *store.LinkRecord) *store.Settings {
	if r.Settings == nil {
		r.Settings = &store.Settings{}
	}
	return r.Settings
}

// tidy drops settings that ask for nothing, so that the record is as it
// was before any.
func tidy(r *store.LinkRecord) {
	if r.Settings.IsZero() {
		r.Settings = nil
	}
}

// Clone is clone for callers that decide on a copy of a record.
func Clone(r *store.LinkRecord) store.LinkRecord { return clone(r) }

// clone copies a record deeply enough for a decision to change it: its
// ends' attachment keys and its impairments are replaced, never written
// through; its settings are copied.
func clone(r *store.LinkRecord) store.LinkRecord {
	c := *r
	if r.Settings != nil {
		s := *r.Settings
		c.Settings = &s
	}
	return c
}

// tunnelIndex stands for a tunnel's ifindex in predictions.
const tunnelIndex = -1 << 20

// predict is the state the link is in once d's steps are taken, from
// obs as it was before them.
func predict(d *Decision, obs Observation) State {
	next := d.Next
	for _, s := range d.Steps {
		switch s.Action {
		case DeleteRecord:
			return StateNone
		case MakeEnd:
			// A made end's netdev, with an index no other has.
			obs.Parking = true
			obs.Ends[s.End] = EndObs{Parked: true}
			next.Ends[s.End].ParkedIndex = -1 - s.End
		case ForgetEnd:
			obs.Ends[s.End] = EndObs{}
		}
	}
	for _, s := range d.Steps {
		switch s.Action {
		case Stitch:
			obs.Ends[s.End].StitchedTo = next.Ends[1-s.End].ParkedIndex
			obs.Ends[1-s.End].StitchedTo = next.Ends[s.End].ParkedIndex
			obs.Ends[s.End].ToTunnel, obs.Ends[1-s.End].ToTunnel = false, false
		case Tunnel:
			obs.Ends[s.End].StitchedTo, obs.Ends[s.End].ToTunnel = tunnelIndex, true
		}
	}
	return StateOf(&next, obs)
}
