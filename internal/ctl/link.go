package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
	"github.com/ratchet-cni/ratchet/internal/linkparam"
	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// linkUsage is `ratchetctl link`'s part of the usage.
const linkUsage = `  ratchetctl link down|up [--store DIR] NS/POD:IF  pull a pod link's cable (both pods lose carrier) / plug it back
  ratchetctl link down|up [--store DIR] --all-of NS/POD
                                                   every link of a pod at once
  ratchetctl link set [--store DIR] [--direction both|to|from] [--delay D] [--jitter D] [--loss P]
                      [--corrupt P] [--duplicate P] [--reorder P] [--rate R] NS/POD:IF
                                                   impair a pod link in the parking namespace (to: toward the
                                                   named end's pod; from: away from it); unset flags keep their value
  ratchetctl link reset [--store DIR] NS/POD:IF    remove a pod link's impairments and its mirror
  ratchetctl link mirror [--store DIR] NS/POD:IF --to NS/POD:IF
                                                   copy a pod link's frames, both directions, to a collector
                                                   pod's interface (a pod link end on the same node)
  ratchetctl link unmirror [--store DIR] NS/POD:IF [--to NS/POD:IF]
                                                   stop copying them
  ratchetctl link show [--store DIR] [-o json] NS/POD:IF
                                                   a pod link's state, declared netem and run-time settings
                  (each link command takes --socket PATH: ratchetd's, through which it changes a
                  cross-node link's settings; both nodes' agents apply them)
`

// lockWait is how long a link command waits for the node lock: ADDs and
// DELs hold it for milliseconds; longer means something is stuck.
const lockWait = 30 * time.Second

// impairFlags are `link set`'s impairment flags, named as the fields of
// linkparam's errors.
var impairFlags = []string{"delay", "jitter", "loss", "corrupt", "duplicate", "reorder", "rate"}

// linkCmd runs `ratchetctl link SUBCOMMAND`.
func linkCmd(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return badArg("link: want a subcommand: add, del, down, up, set, reset, mirror, unmirror or show")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "add":
		return linkAdd(args)
	case "del":
		return linkDel(args)
	}
	fs := newFlagSet("link " + sub)
	dir := fs.String("store", netconf.DefaultStoreDir, "the local store's directory (store.dir in the network config)")
	socket := fs.String("socket", netconf.DefaultAgentSocket, "ratchetd's socket, for cross-node links (store.agentSocket in the network config)")
	var allOf, mirrorTo *string
	switch sub {
	case "down", "up":
		allOf = fs.String("all-of", "", "every link of this pod (NAMESPACE/POD)")
	case "mirror", "unmirror":
		mirrorTo = fs.String("to", "", "the collector: a pod link end on this node, NAMESPACE/POD:IFNAME")
	case "set", "reset", "show":
	case "-h", "--help", "help":
		return errHelp
	default:
		return badArg("link: unknown subcommand %q", sub)
	}
	var output, direction *string
	values := map[string]*string{}
	if sub == "set" {
		direction = fs.String("direction", "both", "both, to (toward the named end's pod) or from (away from it)")
		for _, name := range impairFlags {
			values[name] = fs.String(name, "", "")
		}
	}
	if sub == "show" {
		output = fs.String("o", "", "json: print JSON")
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	// Every value is checked before anything is opened or changed.
	var target *endRef
	switch {
	case allOf != nil && *allOf != "":
		if len(pos) > 0 {
			return badArg("link %s: --all-of %s and %s: give one of them", sub, *allOf, pos[0])
		}
	case len(pos) != 1:
		return badArg("link %s: want one link end, NAMESPACE/POD:IFNAME", sub)
	default:
		if target, err = parseEndRef(pos[0]); err != nil {
			return err
		}
	}
	if output != nil && *output != "" && *output != "json" {
		return fmt.Errorf("-o %q: want json", *output)
	}
	var collector *endRef
	if mirrorTo != nil && *mirrorTo != "" {
		if collector, err = parseEndRef(*mirrorTo); err != nil {
			return fmt.Errorf("--to: %w", err)
		}
	}
	if sub == "mirror" && collector == nil {
		return badArg("link mirror: --to: want the collector's end, NAMESPACE/POD:IFNAME")
	}
	var change impairChange
	if sub == "set" {
		if change, err = parseImpairChange(fs, values, *direction); err != nil {
			return err
		}
	}
	s, err := openSession(*dir)
	if err != nil {
		return err
	}
	defer s.close()
	s.socket = *socket
	switch sub {
	case "down", "up":
		decide := cableDecider(sub == "down")
		if allOf != nil && *allOf != "" {
			return s.adjustAll(*allOf, decide)
		}
		return s.adjust(target, decide)
	case "set":
		return s.adjust(target, func(rec *store.LinkRecord, mine int, obs podlink.Observation) (podlink.Decision, error) {
			toward, err := change.apply(rec, mine)
			if err != nil {
				return podlink.Decision{}, err
			}
			return podlink.OnImpair(rec, toward, obs), nil
		})
	case "reset":
		var reset *store.LinkRecord
		err := s.adjust(target, func(rec *store.LinkRecord, _ int, obs podlink.Observation) (podlink.Decision, error) {
			reset = rec
			return podlink.OnReset(rec, obs), nil
		})
		if err != nil || reset == nil || reset.MirrorTo() == nil {
			return err
		}
		// The mirror went with the impairments: the collector's list of
		// links mirrored to it forgets this one.
		return podlink.NoteMirror(context.Background(), s.st, reset.ID, reset.MirrorTo(), nil)
	case "mirror", "unmirror":
		return s.mirror(target, collector, sub == "unmirror")
	}
	rec, _, err := s.find(target)
	if err != nil {
		return err
	}
	obs := s.observe(rec)
	if s.x != nil {
		if obs.Collector, err = s.x.ObserveCollector(context.Background(), s.st, rec); err != nil {
			return err
		}
	}
	v := describeLink(rec, podlink.StateOf(rec, obs))
	if v.Mirror != nil && obs.Collector == 0 {
		v.MirrorWaiting = true
	}
	s.close() // printed with the node lock released (see links)
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	return v.print(stdout)
}

// parseInterspersed parses fs's flags wherever they are among args, and
// returns the other arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			return nil, badArg("%v", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos, args = append(pos, args[0]), args[1:]
	}
}

// endRef is a link end as the user names it: NAMESPACE/POD:IFNAME.
type endRef struct{ pod, ifName string }

func (e *endRef) String() string { return e.pod + ":" + e.ifName }

func parseEndRef(s string) (*endRef, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 || !strings.Contains(s[:i], "/") || i == len(s)-1 || strings.HasPrefix(s, "/") || strings.HasSuffix(s[:i], "/") {
		return nil, badArg("link end %q: want NAMESPACE/POD:IFNAME", s)
	}
	return &endRef{pod: s[:i], ifName: s[i+1:]}, nil
}

// impairChange is what `link set` changes: the fields given, in the
// directions given, relative to the named end.
type impairChange struct {
	to, from bool
	set      map[string]bool
	with     linkparam.Impairment
}

// parseImpairChange parses the impairment flags the user gave; an error
// names the flag (linkparam names the field, which is the flag's name).
func parseImpairChange(fs *flag.FlagSet, values map[string]*string, direction string) (impairChange, error) {
	c := impairChange{set: map[string]bool{}}
	switch direction {
	case "both":
		c.to, c.from = true, true
	case "to":
		c.to = true
	case "from":
		c.from = true
	default:
		return c, fmt.Errorf("--direction %q: want both, to or from", direction)
	}
	fs.Visit(func(f *flag.Flag) { c.set[f.Name] = true })
	var err error
	for _, name := range impairFlags {
		if !c.set[name] {
			continue
		}
		v := *values[name]
		m := &c.with
		switch name {
		case "delay":
			m.Delay, err = linkparam.ParseDelay(name, v)
		case "jitter":
			m.Jitter, err = linkparam.ParseDelay(name, v)
		case "loss":
			m.Loss, err = linkparam.ParsePercent(name, v)
		case "corrupt":
			m.Corrupt, err = linkparam.ParsePercent(name, v)
		case "duplicate":
			m.Duplicate, err = linkparam.ParsePercent(name, v)
		case "reorder":
			m.Reorder, err = linkparam.ParsePercent(name, v)
		case "rate":
			// "0" takes the rate away; any other value is a rate.
			if v != "0" {
				m.Rate, err = linkparam.ParseRate(v)
			}
		}
		if err != nil {
			return c, fmt.Errorf("--%v", err)
		}
	}
	given := false
	for _, name := range impairFlags {
		given = given || c.set[name]
	}
	if !given {
		return c, badArg("link set: give at least one of --%s", strings.Join(impairFlags, ", --"))
	}
	return c, nil
}

// apply returns rec's impairments with the change made, relative to end
// mine, checked as a whole (a reorder needs a delay, which may be set
// already).
func (c impairChange) apply(rec *store.LinkRecord, mine int) ([2]*linkparam.Impairment, error) {
	var toward [2]*linkparam.Impairment
	for i := range toward {
		cur := linkparam.Impairment{}
		if t := rec.Toward(i); t != nil {
			cur = *t
		}
		if i == mine && c.to || i != mine && c.from {
			c.merge(&cur)
			if err := cur.Check(); err != nil {
				return toward, fmt.Errorf("--%v", err)
			}
		}
		toward[i] = &cur
	}
	return toward, nil
}

func (c impairChange) merge(m *linkparam.Impairment) {
	w := c.with
	for name := range c.set {
		switch name {
		case "delay":
			m.Delay = w.Delay
		case "jitter":
			m.Jitter = w.Jitter
		case "loss":
			m.Loss = w.Loss
		case "corrupt":
			m.Corrupt = w.Corrupt
		case "duplicate":
			m.Duplicate = w.Duplicate
		case "reorder":
			m.Reorder = w.Reorder
		case "rate":
			m.Rate = w.Rate
		}
	}
}

// session is one link command's hold on the node: the node lock with the
// store, the parking namespace and one netlink handle in it (nil when the
// node has none), all released by close.
type session struct {
	st   *store.Local
	park ns.NetNS
	x    *podlink.Executor
	// socket is ratchetd's: cross-node links' settings go through it.
	socket string
}

func openSession(dir string) (*session, error) {
	ctx := context.Background()
	st, err := store.OpenLocalWithin(ctx, dir, lockWait)
	if err != nil {
		return nil, fmt.Errorf("--store %s: %w", dir, err)
	}
	s := &session{st: st, park: podlink.OpenParkingOf(ctx, st)}
	if s.park != nil {
		if s.x, err = podlink.NewExecutor(nil, s.park, nil); err != nil {
			s.close()
			return nil, err
		}
	}
	return s, nil
}

// close releases the session, last taken first; it may run twice.
func (s *session) close() {
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

func (s *session) observe(rec *store.LinkRecord) podlink.Observation {
	if s.x == nil {
		return podlink.Observation{}
	}
	return s.x.Observe(rec)
}

// find returns the record of the link with end e, and that end's index.
func (s *session) find(e *endRef) (*store.LinkRecord, int, error) {
	ctx := context.Background()
	rec, err := s.st.LinkAt(ctx, e.pod, e.ifName)
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
		if mine, _, ok := r.End(e.pod, e.ifName); ok {
			if mine == &r.Ends[0] {
				return r, 0, nil
			}
			return r, 1, nil
		}
	}
	return nil, 0, fmt.Errorf("%w %s", ErrNoSuchEnd, shown(e.String()))
}

// decider is a run-time event's decision for rec, whose end mine the user
// named.
type decider func(rec *store.LinkRecord, mine int, obs podlink.Observation) (podlink.Decision, error)

// adjust decides and applies one link's change, and records it.
func (s *session) adjust(e *endRef, decide decider) error {
	rec, mine, err := s.find(e)
	if err != nil {
		return err
	}
	return s.adjustLinks([]*store.LinkRecord{rec}, []int{mine}, decide)
}

// adjustAll applies a change to every link of pod, in one transaction.
func (s *session) adjustAll(pod string, decide decider) error {
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
func (s *session) adjustLinks(recs []*store.LinkRecord, mines []int, decide decider) (err error) {
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
func (s *session) applyLocal(recs []*store.LinkRecord, ds []podlink.Decision, local []int) error {
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

// agentWait bounds a call to ratchetd: a write to etcd and its answer.
const agentWait = 10 * time.Second

// decideRemote decides the change of rec, a cross-node link, whose
// settings are the cluster's: it reads them through the node's agent
// (the local record's are a mirror the agent keeps, possibly behind
// another node's change), decides the change from them as for a local
// link, and returns the agent's request that writes the result if nobody
// changed them in between (callAgent). The agents apply it; this node's
// local record follows within a reconcile.
func (s *session) decideRemote(rec *store.LinkRecord, mine int, obs podlink.Observation, decide decider) (*agentapi.Request, error) {
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
func (s *session) callAgent(req *agentapi.Request) error {
	ctx, cancel := context.WithTimeout(context.Background(), agentWait)
	defer cancel()
	if _, err := agentapi.Call(ctx, s.socket, req); err != nil {
		return fmt.Errorf("link %s: %w", shown(req.LinkID), err)
	}
	return nil
}

// linkDescription is what `link show` prints.
type linkDescription struct {
	ID    string         `json:"id"`
	Added bool           `json:"added,omitempty"`
	State podlink.State  `json:"state"`
	Ends  [2]endSettings `json:"ends"`
	// Mirror is the collector the link's frames are copied to;
	// MirrorWaiting says that its interface is not on this node now, so
	// nothing is copied until its pod comes back.
	Mirror        *store.MirrorTarget `json:"mirrorTo,omitempty"`
	MirrorWaiting bool                `json:"mirrorWaiting,omitempty"`
	rec           *store.LinkRecord
}

// endSettings is one end of a link: its declared netem (on the pod's
// interface) and the run-time impairment of the traffic toward its pod
// (in the parking namespace).
type endSettings struct {
	Pod    string             `json:"pod"`
	IfName string             `json:"ifName"`
	Netem  *netconf.NetemSpec `json:"declaredNetem,omitempty"`
	// Toward is the run-time impairment toward this end's pod, in tc's
	// notation ("" for none); TowardDetail is the same in the kernel's
	// units.
	Toward       string                `json:"toward,omitempty"`
	TowardDetail *linkparam.Impairment `json:"towardDetail,omitempty"`
	Pulled       bool                  `json:"pulled"`
}

func describeLink(rec *store.LinkRecord, state podlink.State) *linkDescription {
	v := &linkDescription{ID: rec.ID, Added: rec.Added, State: state, Mirror: rec.MirrorTo(), rec: rec}
	for i, e := range rec.Ends {
		es := endSettings{Pod: e.Pod, IfName: e.IfName, Pulled: rec.Pulled()}
		var spec struct {
			Netem *netconf.NetemSpec `json:"netem"`
		}
		if len(e.Spec) > 0 && json.Unmarshal(e.Spec, &spec) == nil {
			es.Netem = spec.Netem
		}
		if t := rec.Toward(i); t != nil {
			es.Toward, es.TowardDetail = t.String(), t
		}
		v.Ends[i] = es
	}
	return v
}

func (v *linkDescription) print(w io.Writer) error {
	fmt.Fprintf(w, "link     %s -- %s\n", endName(v.rec.Ends[0]), endName(v.rec.Ends[1]))
	fmt.Fprintf(w, "state    %s\n", v.State)
	fmt.Fprintf(w, "pulled   %v\n", v.rec.Pulled())
	switch {
	case v.Mirror == nil:
		fmt.Fprintf(w, "mirror   none\n")
	case v.MirrorWaiting:
		fmt.Fprintf(w, "mirror   to %s (both directions; its interface is not here now: no copies until its pod is back)\n", shown(v.Mirror.Pod)+":"+shown(v.Mirror.IfName))
	default:
		fmt.Fprintf(w, "mirror   to %s (both directions)\n", shown(v.Mirror.Pod)+":"+shown(v.Mirror.IfName))
	}
	if v.rec.Added {
		fmt.Fprintf(w, "added    by ratchetctl link add (the administrator's until link del)\n")
	}
	for _, e := range v.Ends {
		declared := "none"
		if n := e.Netem; n != nil {
			declared = strings.TrimSpace(strings.Join([]string{field("delay", n.Delay), field("jitter", n.Jitter), field("loss", n.Loss), field("rate", n.Rate)}, " "))
		}
		toward := e.Toward
		if toward == "" {
			toward = "none"
		}
		fmt.Fprintf(w, "toward %s:%s: declared netem %s; run-time %s\n", shown(e.Pod), shown(e.IfName), shown(declared), toward)
	}
	return nil
}

// mirrorPrefix starts a settings column's mirror part.
const mirrorPrefix = "mirror→"

func field(name, v string) string {
	if v == "" {
		return ""
	}
	return name + " " + v
}

// settingsColumn is `ratchetctl links`' summary of a link's run-time
// settings, its last column: "pulled", "rate 10mbit→lab/r2:w1" (toward
// that end's pod), "mirror→lab/c:m1" (copied to that collector), joined
// by "; ", or "-".
func settingsColumn(rec store.LinkRecord) string {
	var parts []string
	if rec.Added {
		parts = append(parts, "added")
	}
	if rec.Pulled() {
		parts = append(parts, "pulled")
	}
	for i, e := range rec.Ends {
		if t := rec.Toward(i); t != nil {
			parts = append(parts, t.String()+"→"+endName(e))
		}
	}
	if m := rec.MirrorTo(); m != nil {
		parts = append(parts, mirrorPrefix+shown(m.Pod)+":"+shown(m.IfName))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "; ")
}
