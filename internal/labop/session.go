// Package labop holds the live-lab operations on one node's pod links:
// pull and plug a cable, impair, reset, mirror, add and remove a link, and
// list the node's links. Each opens a Session (the node lock with the
// local store, the parking namespace and an executor in it), decides the
// change with internal/podlink and applies it there, or, for a cross-node
// link's settings, through ratchetd's socket. ratchetctl (internal/ctl) is
// one front-end of these operations; ratchetd's topology page
// (internal/web) and Kubernetes watcher (internal/kube) are others, so
// this package parses no command line and prints nothing.
package labop

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/printable"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// LockWait is how long an operation waits for the node lock: ADDs and
// DELs hold it for milliseconds; longer means something is stuck.
const LockWait = 30 * time.Second

// agentWait bounds a call to ratchetd: a write to etcd and its answer.
const agentWait = 10 * time.Second

// ErrNoSuchEnd is the error of an operation naming an end no pod link
// has.
var ErrNoSuchEnd = errors.New("no pod link has the end")

// ArgumentError is an operation's refusal of a malformed argument, such
// as an end that is not NAMESPACE/POD:IFNAME; nothing was changed.
type ArgumentError struct{ msg string }

func (e *ArgumentError) Error() string { return e.msg }

func badArg(format string, a ...any) error { return &ArgumentError{fmt.Sprintf(format, a...)} }

// IsBadArgument reports whether err is an operation's refusal of its
// arguments: a malformed value (ArgumentError) or an end no link has
// (ErrNoSuchEnd). It tells the caller's mistakes from the node's
// failures.
func IsBadArgument(err error) bool {
	var ae *ArgumentError
	return errors.As(err, &ae) || errors.Is(err, ErrNoSuchEnd)
}

// End is a link end as a user names it: NAMESPACE/POD:IFNAME.
type End struct{ Pod, IfName string }

func (e End) String() string { return e.Pod + ":" + e.IfName }

// ParseEnd parses NAMESPACE/POD:IFNAME; a malformed end is an
// ArgumentError.
func ParseEnd(s string) (End, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 || !strings.Contains(s[:i], "/") || i == len(s)-1 || strings.HasPrefix(s, "/") || strings.HasSuffix(s[:i], "/") {
		return End{}, badArg("link end %q: want NAMESPACE/POD:IFNAME", s)
	}
	return End{Pod: s[:i], IfName: s[i+1:]}, nil
}

// endName is a record's end as it can be printed.
func endName(e store.LinkEnd) string { return shown(e.Pod) + ":" + shown(e.IfName) }

// shown is a name from the store or the user as an error may carry it.
var shown = printable.Name

// Session is one operation's hold on the node: the node lock with the
// store, the parking namespace and one executor in it (nil when the node
// has none), all released by Close.
type Session struct {
	st   *store.Local
	park ns.NetNS
	x    *podlink.Executor
	// socket is ratchetd's: cross-node links' settings go through it.
	socket string
}

// Open takes the node lock of the local store in dir (waiting up to
// LockWait, or until ctx is done) and opens the parking namespace; socket
// is ratchetd's, for cross-node links ("" where none is used). A failure
// to open the store is a StoreError.
func Open(ctx context.Context, dir, socket string) (*Session, error) {
	st, err := store.OpenLocalWithin(ctx, dir, LockWait)
	if err != nil {
		return nil, &StoreError{Dir: dir, Err: err} // the caller names its flag
	}
	s := &Session{st: st, park: podlink.OpenParkingOf(ctx, st), socket: socket}
	if s.park != nil {
		if s.x, err = podlink.NewExecutor(nil, s.park, nil); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// Close releases the session, last taken first; it may run twice.
func (s *Session) Close() {
	if s.x != nil {
		s.x.Close()
		s.x = nil
	}
	if s.park != nil {
		s.park.Close()
		s.park = nil
	}
	if s.st != nil {
		s.st.Close()
		s.st = nil
	}
}

// Parking is the node's parking namespace (nil when it has none), valid
// until Close.
func (s *Session) Parking() ns.NetNS { return s.park }

// Executor is the session's executor in the parking namespace (nil when
// the node has none), valid until Close.
func (s *Session) Executor() *podlink.Executor { return s.x }

func (s *Session) observe(rec *store.LinkRecord) podlink.Observation {
	if s.x == nil {
		return podlink.Observation{}
	}
	return s.x.Observe(rec)
}

// Find returns the record of the link with end e, and that end's index;
// no such link is ErrNoSuchEnd.
func (s *Session) Find(e End) (*store.LinkRecord, int, error) {
	ctx := context.Background()
	rec, err := s.st.LinkAt(ctx, e.Pod, e.IfName)
	if err != nil {
		return nil, 0, err
	}
	recs := []*store.LinkRecord{rec}
	if rec == nil {
		// A link another pod declares toward e's pod is not indexed
		// under it until e's pod takes it up.
		if recs, err = s.st.Links(ctx); err != nil {
			return nil, 0, err
		}
	}
	for _, r := range recs {
		if mine, _, ok := r.End(e.Pod, e.IfName); ok {
			if mine == &r.Ends[0] {
				return r, 0, nil
			}
			return r, 1, nil
		}
	}
	return nil, 0, fmt.Errorf("%w %s", ErrNoSuchEnd, shown(e.String()))
}

// Status is a link as the node sees it now.
type Status struct {
	Record *store.LinkRecord
	State  podlink.State
	// MirrorWaiting says that the link is mirrored to a collector whose
	// interface is not on this node now: nothing is copied until its pod
	// comes back.
	MirrorWaiting bool
}

// Status returns the state of the link with end e.
func (s *Session) Status(e End) (Status, error) {
	rec, _, err := s.Find(e)
	if err != nil {
		return Status{}, err
	}
	obs := s.observe(rec)
	if s.x != nil {
		if obs.Collector, err = s.x.ObserveCollector(context.Background(), s.st, rec); err != nil {
			return Status{}, err
		}
	}
	return Status{Record: rec, State: podlink.StateOf(rec, obs), MirrorWaiting: rec.MirrorTo() != nil && obs.Collector == 0}, nil
}

// Decider is a run-time change's decision for rec, whose end mine the
// user named.
type Decider func(rec *store.LinkRecord, mine int, obs podlink.Observation) (podlink.Decision, error)

// Adjust decides and applies the change of the link with end e, and
// records it.
func (s *Session) Adjust(e End, decide Decider) error {
	rec, mine, err := s.Find(e)
	if err != nil {
		return err
	}
	return s.adjustLinks([]*store.LinkRecord{rec}, []int{mine}, decide)
}

// AdjustAll applies a change to every link of pod, in one transaction.
func (s *Session) AdjustAll(pod string, decide Decider) error {
	recs, err := s.st.LinksOf(context.Background(), pod)
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		return fmt.Errorf("--all-of %s: the pod has no links", shown(pod))
	}
	mines := make([]int, len(recs))
	for i, r := range recs {
		if r.Ends[1].Pod == pod {
			mines[i] = 1
		}
	}
	return s.adjustLinks(recs, mines, decide)
}

// adjustLinks decides every link's change first (any refusal changes
// nothing), then takes the kernel steps, undone should one fail, and
// writes the records in one transaction.
func (s *Session) adjustLinks(recs []*store.LinkRecord, mines []int, decide Decider) (err error) {
	ds := make([]podlink.Decision, len(recs))
	// One link: a few lookups; many: one dump of the parking namespace.
	obs := make([]podlink.Observation, len(recs))
	switch {
	case s.x == nil:
	case len(recs) == 1:
		obs[0] = s.x.Observe(recs[0])
	default:
		if obs, err = s.x.ObserveMany(recs); err != nil {
			return err
		}
	}
	var local []int
	var remote []*agentapi.Request
	for i, rec := range recs {
		if podlink.Remote(rec, obs[i]) {
			// Its settings are the cluster's: ratchetd writes them, and
			// the agents of both nodes apply them on their own ends.
			req, err := s.decideRemote(rec, mines[i], obs[i], decide)
			if err != nil {
				return err
			}
			remote = append(remote, req)
			continue
		}
		if ds[i], err = decide(rec, mines[i], obs[i]); err != nil {
			return err
		}
		local = append(local, i)
	}
	if len(local) > 0 {
		if err := s.applyLocal(recs, ds, local); err != nil {
			return err
		}
	}
	for _, req := range remote {
		if err := s.callAgent(req); err != nil {
			return err
		}
	}
	return nil
}

// applyLocal takes the kernel steps of the decisions ds of the links
// local names, undone should one fail, and writes their records in one
// transaction.
func (s *Session) applyLocal(recs []*store.LinkRecord, ds []podlink.Decision, local []int) error {
	undo := podlink.NewUndo(nil)
	ok := false
	defer func() { undo.Finish(ok) }()
	next := make([]*store.LinkRecord, 0, len(local))
	for _, i := range local {
		rec := recs[i]
		if s.x != nil {
			if err := s.x.WithUndo(undo).Apply(context.Background(), rec, &ds[i], nil); err != nil {
				return err
			}
		}
		next = append(next, &ds[i].Next)
	}
	if err := s.st.PutLinks(context.Background(), next); err != nil {
		return err
	}
	ok = true
	return nil
}

// decideRemote decides the change of rec, a cross-node link, whose
// settings are the cluster's: it reads them through the node's agent
// (the local record's are a mirror the agent keeps, possibly behind
// another node's change), decides the change from them as for a local
// link, and returns the agent's request that writes the result if nobody
// changed them in between (callAgent). The agents apply it; this node's
// local record follows within a reconcile.
func (s *Session) decideRemote(rec *store.LinkRecord, mine int, obs podlink.Observation, decide Decider) (*agentapi.Request, error) {
	e := rec.Ends[mine]
	req := &agentapi.Request{Op: agentapi.OpLinkSettings, LinkID: rec.ID, Pod: e.Pod, IfName: e.IfName}
	ctx, cancel := context.WithTimeout(context.Background(), agentWait)
	defer cancel()
	resp, err := agentapi.Call(ctx, s.socket, req)
	if err != nil {
		return nil, fmt.Errorf("link %s is cross-node, its settings are ratchetd's: %w", shown(rec.ID), err)
	}
	cur := podlink.Clone(rec)
	cur.Settings = &store.Settings{}
	cur.Settings.Pulled, cur.Settings.Toward = resp.Settings.Ordered(mine)
	if cur.Settings.IsZero() {
		cur.Settings = nil
	}
	d, err := decide(&cur, mine, obs)
	if err != nil {
		return nil, err
	}
	next := d.Next.Settings
	if next == nil {
		next = &store.Settings{}
	}
	req.Settings, req.Revision = agentapi.Relative(next.Pulled, next.Toward, mine), resp.Revision
	return req, nil
}

// callAgent sends a write decideRemote prepared.
func (s *Session) callAgent(req *agentapi.Request) error {
	ctx, cancel := context.WithTimeout(context.Background(), agentWait)
	defer cancel()
	if _, err := agentapi.Call(ctx, s.socket, req); err != nil {
		return fmt.Errorf("link %s: %w", shown(req.LinkID), err)
	}
	return nil
}
