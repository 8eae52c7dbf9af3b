package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ratchet-cni/ratchet/internal/labop"
	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// eventsUsage is `ratchetctl events`' part of the usage.
const eventsUsage = `  ratchetctl events [--store DIR] [-o json]       stream what happens to the node's pod links (made, stitched,
                                                   parked, pulled, restored, impaired, removed, broken) until
                                                   interrupted
`

// Event kinds, as `ratchetctl events` prints them (user-visible: README,
// docs/lab.md).
const (
	EventMade     = "made"     // a link record appeared
	EventStitched = "stitched" // both ends present and stitched: up
	EventParked   = "parked"   // one pod went away; its peer's end waits
	EventPulled   = "pulled"   // the cable was pulled (link down)
	EventRestored = "restored" // the cable was plugged back (link up)
	EventImpaired = "impaired" // run-time impairments changed (link set/reset)
	EventMirrored = "mirrored" // the mirror changed (link mirror/unmirror/reset)
	EventRemoved  = "removed"  // the link record is gone
	EventBroken   = "broken"   // the store and the kernel disagree
	EventState    = "state"    // any other change of state (pending, remote)
)

// Event is one line of `ratchetctl events`.
type Event struct {
	Time  time.Time     `json:"time"`
	Event string        `json:"event"`
	Link  string        `json:"link"`
	Ends  [2]string     `json:"ends"`
	State podlink.State `json:"state"`
	// Details says what changed: the run-time settings, and what the
	// parking namespace's netlink notifications showed of the link's
	// parked netdevs since the last event.
	Details string `json:"details,omitempty"`
}

// linkSnap is what events remembers of a link between two reads.
type linkSnap struct {
	view     podlink.LinkView
	settings string
}

// storePoll is how often events looks whether the store file changed; the
// kernel's notifications wake it at once, but a record is written after
// the kernel steps it describes, so the store is watched too.
const storePoll = 50 * time.Millisecond

// resync re-reads everything this often whatever the triggers said, in
// case a store write fell between a read and the file's stat.
const resync = time.Second

// maxNotes is how many kernel notes of one netdev wait for an event.
const maxNotes = 8

// eventsCmd runs `ratchetctl events`.
func eventsCmd(args []string, stdout io.Writer) error {
	fs := newFlagSet("events")
	dir := fs.String("store", netconf.DefaultStoreDir, "the local store's directory (store.dir in the network config)")
	output := fs.String("o", "", "json: one JSON object a line")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *output != "" && *output != "json" {
		return fmt.Errorf("-o %q: want json", *output)
	}
	if _, err := os.Stat(*dir); err != nil {
		return fmt.Errorf("--store %s: %w", *dir, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	w := &eventWriter{out: stdout, json: *output == "json"}
	return watchEvents(ctx, *dir, w.write)
}

// eventWriter prints events as lines, or as JSON objects a line.
type eventWriter struct {
	out  io.Writer
	json bool
}

func (w *eventWriter) write(e Event) error {
	if w.json {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w.out, "%s\n", b)
		return err
	}
	line := fmt.Sprintf("%s %-8s %s -- %s (%s)", e.Time.Format("15:04:05.000"), e.Event, e.Ends[0], e.Ends[1], e.State)
	if e.Details != "" {
		line += ": " + e.Details
	}
	_, err := fmt.Fprintln(w.out, escapeControls(line))
	return err
}

// kernelNote is one netlink notification from the parking namespace.
type kernelNote struct {
	index int
	name  string // the netdev's name; "" when the notification has none (tc)
	text  string
}

// describe names the netdev by its name, or by the parked end's name
// recorded for its index, or by its index.
func (n kernelNote) describe(parked map[int]string) string {
	name := n.name
	if name == "" {
		name = parked[n.index]
	}
	if name == "" {
		name = fmt.Sprintf("ifindex %d", n.index)
	}
	return name + " " + n.text
}

// watchEvents emits the events of the store in dir until ctx ends.
func watchEvents(ctx context.Context, dir string, emit func(Event) error) error {
	notes := make(chan kernelNote, 256)
	var sub *parkWatch
	defer func() {
		if sub != nil {
			sub.close()
		}
	}()
	prev, parkPath, err := readSnapshot(ctx, dir)
	if err != nil {
		return err
	}
	lastStat := statStore(dir)
	pending := map[int][]kernelNote{} // kernel notes by parked ifindex
	names := indexNames(prev, nil)    // parked ifindex -> link id
	poll := time.NewTicker(storePoll)
	defer poll.Stop()
	lastRead := time.Now()
	for {
		if sub == nil && parkPath != "" {
			// Subscribed once the node has a parking namespace (its first
			// pod link makes it); a failure is retried at the next read.
			if sub, err = subscribePark(parkPath, notes); err != nil {
				sub = nil
			}
		}
		reread := false
		select {
		case <-ctx.Done():
			return nil
		case n := <-notes:
			pending[n.index] = append(pending[n.index], n)
			// Let the rest of one command's notifications arrive first.
			drain(notes, pending, 20*time.Millisecond)
			reread = true
		case <-poll.C:
			st := statStore(dir)
			reread = st != lastStat || time.Since(lastRead) > resync
		}
		if !reread {
			continue
		}
		lastStat = statStore(dir)
		next, path, err := readSnapshot(ctx, dir)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		lastRead = time.Now()
		if path != parkPath && sub != nil {
			// A new parking namespace (the store was reset after a
			// reboot): the socket stays in the old one.
			sub.close()
			sub = nil
		}
		parkPath = path
		names = indexNames(next, names)
		details := map[string][]string{}
		parked := parkedNames(next)
		for index, ns := range pending {
			if id, ok := names[index]; ok {
				for _, n := range ns {
					details[id] = append(details[id], n.describe(parked))
				}
			}
		}
		for _, e := range diffSnapshots(prev, next, details, time.Now()) {
			if err := emit(e); err != nil {
				return err
			}
			// Notes are told with the first event of their link only.
			delete(details, e.Link)
		}
		// Notes of links whose state did not change (yet) wait for the
		// record that explains them; only the last few are kept.
		for index, texts := range pending {
			if id, ok := names[index]; !ok || details[id] == nil {
				delete(pending, index)
			} else if len(texts) > maxNotes {
				pending[index] = texts[len(texts)-maxNotes:]
			}
		}
		prev = next
	}
}

func drain(notes <-chan kernelNote, pending map[int][]kernelNote, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case n := <-notes:
			pending[n.index] = append(pending[n.index], n)
		case <-t.C:
			return
		}
	}
}

// storeStat is what tells that the store file changed.
type storeStat struct {
	mod  time.Time
	size int64
}

func statStore(dir string) storeStat {
	fi, err := os.Stat(filepath.Join(dir, "state.db"))
	if err != nil {
		return storeStat{}
	}
	return storeStat{fi.ModTime(), fi.Size()}
}

// readSnapshot reads the links and their states, holding the node lock
// only while it reads (every ADD and DEL on the node waits for it).
func readSnapshot(ctx context.Context, dir string) (snap map[string]linkSnap, path string, err error) {
	err = labop.View(ctx, dir, labop.LockWait, false, func(lab *labop.Lab) error {
		snap = make(map[string]linkSnap, len(lab.Links))
		for _, v := range lab.Links {
			snap[v.ID] = linkSnap{view: v, settings: settingsColumn(store.LinkRecord{Ends: v.Ends, Settings: v.Settings})}
		}
		path = lab.ParkingPath
		return nil
	})
	return snap, path, storeFlag(err)
}

// indexNames maps the parked ifindexes of snap's links to their ids,
// keeping old's entries (a deleted netdev's notification names an index
// the record no longer holds).
func indexNames(snap map[string]linkSnap, old map[int]string) map[int]string {
	m := map[int]string{}
	for k, v := range old {
		m[k] = v
	}
	for id, s := range snap {
		for _, e := range s.view.Ends {
			if e.ParkedIndex != 0 {
				m[e.ParkedIndex] = id
			}
		}
	}
	return m
}

// parkedNames maps the parked ifindexes of snap's links to the parked
// netdevs' names.
func parkedNames(snap map[string]linkSnap) map[int]string {
	m := map[int]string{}
	for _, s := range snap {
		for _, e := range s.view.Ends {
			if e.ParkedIndex != 0 {
				m[e.ParkedIndex] = e.Parked
			}
		}
	}
	return m
}

// diffSnapshots returns the events that lead from prev to next, in the
// order of the links' ids; details holds kernel notes by link id.
func diffSnapshots(prev, next map[string]linkSnap, details map[string][]string, now time.Time) []Event {
	var ids []string
	for id := range prev {
		ids = append(ids, id)
	}
	for id := range next {
		if _, ok := prev[id]; !ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	var out []Event
	for _, id := range ids {
		p, had := prev[id]
		n, has := next[id]
		note := strings.Join(details[id], ", ")
		ev := func(kind string, s linkSnap, detail string) {
			var parts []string
			for _, s := range []string{detail, kernelDetail(note)} {
				if s != "" {
					parts = append(parts, s)
				}
			}
			d := strings.Join(parts, "; ")
			out = append(out, Event{Time: now, Event: kind, Link: id, State: s.view.State, Details: d,
				Ends: [2]string{s.view.Ends[0].Pod + ":" + s.view.Ends[0].IfName, s.view.Ends[1].Pod + ":" + s.view.Ends[1].IfName}})
			note = ""
		}
		switch {
		case !has:
			ev(EventRemoved, p, "")
			continue
		case !had:
			ev(EventMade, n, "")
			p = linkSnap{view: podlink.LinkView{State: podlink.StatePending}, settings: "-"}
		}
		impairment := settingsOnly(n.settings)
		impairChanged := impairment != settingsOnly(p.settings)
		switch {
		case p.view.State != n.view.State:
			kind, detail := transition(p.view.State, n.view.State), ""
			if kind == EventImpaired || impairChanged {
				detail = settingsDetail(impairment)
			}
			ev(kind, n, detail)
		case impairChanged:
			ev(EventImpaired, n, settingsDetail(impairment))
		}
		if m := mirrorOnly(n.settings); m != mirrorOnly(p.settings) {
			if m == "" {
				m = "no mirror"
			}
			ev(EventMirrored, n, m)
		}
	}
	return out
}

// transition names a change of state.
func transition(from, to podlink.State) string {
	switch to {
	case podlink.StateUp:
		if from == podlink.StatePulled {
			return EventRestored
		}
		if from == podlink.StateImpaired {
			return EventImpaired
		}
		return EventStitched
	case podlink.StateImpaired:
		if from == podlink.StatePulled {
			return EventRestored
		}
		if from == podlink.StateUp {
			return EventImpaired
		}
		return EventStitched
	case podlink.StatePulled:
		return EventPulled
	case podlink.StateParked:
		return EventParked
	case podlink.StateBroken:
		return EventBroken
	}
	return EventState
}

// settingsOnly is a settings column without "pulled" and the mirror: the
// impairments.
func settingsOnly(col string) string {
	var parts []string
	for _, p := range strings.Split(col, "; ") {
		if p != "pulled" && p != "-" && !strings.HasPrefix(p, mirrorPrefix) {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "; ")
}

// mirrorOnly is a settings column's mirror part ("mirror→NS/POD:IF"), or "".
func mirrorOnly(col string) string {
	for _, p := range strings.Split(col, "; ") {
		if strings.HasPrefix(p, mirrorPrefix) {
			return p
		}
	}
	return ""
}

func settingsDetail(s string) string {
	if s == "" {
		return "no impairment"
	}
	return s
}

func kernelDetail(note string) string {
	if note == "" {
		return ""
	}
	return "kernel: " + note
}

// parkWatch is a netlink socket bound in the parking namespace, and the
// goroutine reading it.
type parkWatch struct {
	sock *nl.NetlinkSocket
	done chan struct{}
}

// subscribePark opens a netlink socket in the parking namespace at path
// for its link and tc notifications, and sends what it reads to notes.
// The socket belongs to the namespace it was opened in: nl.SubscribeAt
// opens it there and returns the thread to its own namespace at once.
func subscribePark(path string, notes chan<- kernelNote) (*parkWatch, error) {
	h, err := netns.GetFromPath(path)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	sock, err := nl.SubscribeAt(h, netns.None(), unix.NETLINK_ROUTE, unix.RTNLGRP_LINK, unix.RTNLGRP_TC)
	if err != nil {
		return nil, fmt.Errorf("parking namespace %s: netlink: %w", path, err)
	}
	w := &parkWatch{sock: sock, done: make(chan struct{})}
	go w.read(notes)
	return w, nil
}

func (w *parkWatch) read(notes chan<- kernelNote) {
	defer close(w.done)
	for {
		msgs, _, err := w.sock.Receive()
		if err != nil {
			if errors.Is(err, unix.ENOBUFS) {
				// Notifications were lost: the periodic resync still
				// reads the state.
				continue
			}
			return // closed
		}
		for _, m := range msgs {
			if n, ok := parseNote(m.Header.Type, m.Data); ok {
				select {
				case notes <- n:
				default: // the reader is behind; the resync catches up
				}
			}
		}
	}
}

func (w *parkWatch) close() {
	w.sock.Close()
	<-w.done
}

// parseNote turns a link or tc notification into a note on its ifindex.
func parseNote(typ uint16, data []byte) (kernelNote, bool) {
	switch typ {
	case unix.RTM_NEWLINK, unix.RTM_DELLINK:
		if len(data) < unix.SizeofIfInfomsg {
			return kernelNote{}, false
		}
		msg := nl.DeserializeIfInfomsg(data)
		name := ""
		if attrs, err := nl.ParseRouteAttr(data[unix.SizeofIfInfomsg:]); err == nil {
			for _, a := range attrs {
				if a.Attr.Type == unix.IFLA_IFNAME {
					name = strings.TrimRight(string(a.Value), "\x00")
				}
			}
		}
		what := "down"
		switch {
		case typ == unix.RTM_DELLINK:
			what = "deleted"
		case msg.Flags&unix.IFF_UP != 0 && msg.Flags&unix.IFF_LOWER_UP != 0:
			what = "up"
		case msg.Flags&unix.IFF_UP != 0:
			what = "up, no carrier"
		}
		return kernelNote{index: int(msg.Index), name: name, text: what}, true
	case unix.RTM_NEWQDISC, unix.RTM_DELQDISC, unix.RTM_NEWTFILTER, unix.RTM_DELTFILTER:
		if len(data) < nl.SizeofTcMsg {
			return kernelNote{}, false
		}
		msg := nl.DeserializeTcMsg(data)
		kind := ""
		if attrs, err := nl.ParseRouteAttr(data[nl.SizeofTcMsg:]); err == nil {
			for _, a := range attrs {
				if a.Attr.Type == nl.TCA_KIND {
					kind = strings.TrimRight(string(a.Value), "\x00")
				}
			}
		}
		verb := map[uint16]string{unix.RTM_NEWQDISC: "qdisc " + kind + " set", unix.RTM_DELQDISC: "qdisc " + kind + " removed",
			unix.RTM_NEWTFILTER: "filter " + kind + " added", unix.RTM_DELTFILTER: "filter " + kind + " removed"}[typ]
		return kernelNote{index: int(msg.Ifindex), text: verb}, true
	}
	return kernelNote{}, false
}
