package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/ratchet-cni/ratchet/internal/labop"
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
		for _, name := range linkparam.ImpairmentFields {
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
	var target labop.End
	switch {
	case allOf != nil && *allOf != "":
		if len(pos) > 0 {
			return badArg("link %s: --all-of %s and %s: give one of them", sub, *allOf, pos[0])
		}
	case len(pos) != 1:
		return badArg("link %s: want one link end, NAMESPACE/POD:IFNAME", sub)
	default:
		if target, err = labop.ParseEnd(pos[0]); err != nil {
			return err
		}
	}
	if output != nil && *output != "" && *output != "json" {
		return fmt.Errorf("-o %q: want json", *output)
	}
	var collector *labop.End
	if mirrorTo != nil && *mirrorTo != "" {
		c, err := labop.ParseEnd(*mirrorTo)
		if err != nil {
			return fmt.Errorf("--to: %w", err)
		}
		collector = &c
	}
	if sub == "mirror" && collector == nil {
		return badArg("link mirror: --to: want the collector's end, NAMESPACE/POD:IFNAME")
	}
	var change labop.ImpairChange
	if sub == "set" {
		if change, err = parseImpairChange(fs, values, *direction); err != nil {
			return err
		}
	}
	s, err := labop.Open(context.Background(), *dir, *socket)
	if err != nil {
		return storeFlag(err)
	}
	defer s.Close()
	switch sub {
	case "down", "up":
		decide := labop.CableDecider(sub == "down")
		if allOf != nil && *allOf != "" {
			return s.AdjustAll(*allOf, decide)
		}
		return s.Adjust(target, decide)
	case "set":
		impair := change.Decider()
		return s.Adjust(target, func(rec *store.LinkRecord, mine int, obs podlink.Observation) (podlink.Decision, error) {
			d, err := impair(rec, mine, obs)
			if err != nil {
				// linkparam names the field, which is the flag's name.
				return d, fmt.Errorf("--%w", err)
			}
			return d, nil
		})
	case "reset":
		return s.Reset(target)
	case "mirror", "unmirror":
		return s.Mirror(target, collector, sub == "unmirror")
	}
	st, err := s.Status(target)
	if err != nil {
		return err
	}
	v := describeLink(st.Record, st.State)
	v.MirrorWaiting = st.MirrorWaiting
	s.Close() // printed with the node lock released (see links)
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

// parseImpairChange parses the impairment flags the user gave; an error
// names the flag (linkparam names the field, which is the flag's name).
func parseImpairChange(fs *flag.FlagSet, values map[string]*string, direction string) (labop.ImpairChange, error) {
	c := labop.ImpairChange{Values: map[string]string{}}
	switch direction {
	case "both":
		c.To, c.From = true, true
	case "to":
		c.To = true
	case "from":
		c.From = true
	default:
		return c, fmt.Errorf("--direction %q: want both, to or from", direction)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, name := range linkparam.ImpairmentFields {
		if !given[name] {
			continue
		}
		// Each value is checked now, before anything is opened.
		var probe linkparam.Impairment
		if err := probe.Set(name, *values[name]); err != nil {
			return c, fmt.Errorf("--%v", err)
		}
		c.Values[name] = *values[name]
	}
	if len(c.Values) == 0 {
		return c, badArg("link set: give at least one of --%s", strings.Join(linkparam.ImpairmentFields, ", --"))
	}
	return c, nil
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
