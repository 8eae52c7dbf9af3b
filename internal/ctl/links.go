package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/ratchet-cni/ratchet/internal/labop"
	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// links lists the registered pods and their links with their states, or
// draws them: for Graphviz, as an SVG picture or as an HTML page.
func links(args []string, stdout io.Writer) error {
	fs := newFlagSet("links")
	dir := fs.String("store", netconf.DefaultStoreDir, "the local store's directory (store.dir in the network config)")
	dot := fs.Bool("dot", false, "print a Graphviz graph")
	stats := fs.Bool("stats", false, "add each link's counters per direction and carrier changes")
	output := fs.String("o", "", "json: print JSON")
	svg := fs.Bool("svg", false, "print an SVG picture (counters and settings on hover)")
	html := fs.Bool("html", false, "print one self-contained HTML page: the picture and tables")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// The pictures are drawn one at a time: name the first two asked for.
	var formats []string
	for _, f := range []struct {
		name string
		on   bool
	}{{"--dot", *dot}, {"--svg", *svg}, {"--html", *html}, {"-o", *output != ""}} {
		if f.on {
			formats = append(formats, f.name)
		}
	}
	switch {
	case *output != "" && *output != "json":
		return badArg("-o %q: want json", *output)
	case len(formats) > 1:
		return badArg("%s and %s: choose one", formats[0], formats[1])
	case *dot && *stats:
		return badArg("--dot and --stats: the graph has no counters")
	}
	// The SVG and the page always carry the counters this node has: one
	// dump of the parking namespace, and they are what a hover shows.
	pods, views, err := readLinks(*dir, *stats || *svg || *html)
	if err != nil {
		return err
	}
	// Printed with the node lock released: stdout may be a pager or a
	// pipe nobody reads yet, and every ADD and DEL on the node would wait
	// for it.
	switch {
	case *dot:
		return printDot(stdout, pods, views)
	case *svg:
		return printSVG(stdout, pods, views)
	case *html:
		return printHTML(stdout, pods, views)
	case *output == "json":
		return printLinksJSON(stdout, pods, views)
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "POD\tNETNS\tATTACHMENT")
	for _, p := range pods {
		fmt.Fprintf(w, "%s\t%s\t%s\n", shown(p.Pod), shown(p.Netns), shown(p.Attachment.String()))
	}
	// The SETTINGS column is there when a link has run-time settings or
	// was added by hand; a link without them ends its line at its last end (no padding to an
	// empty cell, no trailing blanks).
	settings := make([]string, len(views))
	header := "\nSTATE\tEND\tEND"
	if *stats {
		header += "\t" + statsHeader
	}
	withSettings := false
	for i, v := range views {
		if !v.Settings.IsZero() || v.Added {
			settings[i] = settingsColumn(store.LinkRecord{Ends: v.Ends, Settings: v.Settings, Added: v.Added})
			withSettings = true
		}
	}
	if withSettings {
		header += "\tSETTINGS"
	}
	fmt.Fprintln(w, header)
	for i, v := range views {
		fmt.Fprintf(w, "%s\t%s\t%s", shown(string(v.State)), endName(v.Ends[0]), endName(v.Ends[1]))
		if *stats {
			fmt.Fprintf(w, "\t%s", statsColumns(v.Stats))
		}
		if settings[i] != "" {
			fmt.Fprintf(w, "\t%s", settings[i])
		}
		fmt.Fprintln(w)
	}
	return w.Flush()
}

// readLinks reads the pods and the links' views from the store in dir
// and the parking namespace, and releases both (the node lock with the
// store) before it returns.
// With stats, each view carries the link's counters.
func readLinks(dir string, stats bool) (pods []*store.PodRecord, views []podlink.LinkView, err error) {
	err = labop.View(context.Background(), dir, 0, stats, func(lab *labop.Lab) error {
		pods, views = lab.Pods, lab.Links
		return nil
	})
	return pods, views, storeFlag(err)
}

// storeFlag names --store in a failure to open the store.
func storeFlag(err error) error {
	if se, ok := errors.AsType[*labop.StoreError](err); ok {
		return fmt.Errorf("--store %s: %w", se.Dir, se.Err)
	}
	return err
}

// endName prints an end as pod:ifname, each quoted if it holds a
// non-printable character (see shown).
func endName(e store.LinkEnd) string { return shown(e.Pod) + ":" + shown(e.IfName) }

// edgeStyle draws each state so that a glance shows what is wrong.
var edgeStyle = map[podlink.State]string{
	podlink.StateUp:       `style=solid, color="darkgreen"`,
	podlink.StatePending:  `style=dashed, color="gray50"`,
	podlink.StateRemote:   `style=solid, color="blue"`,
	podlink.StateParked:   `style=dotted, color="orange"`,
	podlink.StateBroken:   `style=bold, color="red"`,
	podlink.StatePulled:   `style=dashed, color="red"`,
	podlink.StateImpaired: `style=solid, color="orange"`,
}

// printDot draws the graph. Every name is written with %q, Go's quoting,
// so no raw control character reaches the output (Graphviz shows the
// escapes as written) and a quote cannot end a DOT string early.
func printDot(w io.Writer, pods []*store.PodRecord, views []podlink.LinkView) error {
	fmt.Fprintln(w, "graph ratchet {")
	fmt.Fprintln(w, "  node [shape=box, style=rounded];")
	present := map[string]bool{}
	for _, p := range pods {
		present[p.Pod] = true
	}
	seen := map[string]bool{}
	for _, v := range views {
		for _, e := range v.Ends {
			if !seen[e.Pod] {
				seen[e.Pod] = true
				style := ""
				if !present[e.Pod] {
					style = `, style="rounded,dashed"`
				}
				fmt.Fprintf(w, "  %q [label=%q%s];\n", e.Pod, e.Pod, style)
			}
		}
		fmt.Fprintf(w, "  %q -- %q [taillabel=%q, headlabel=%q, label=%q, %s];\n",
			v.Ends[0].Pod, v.Ends[1].Pod, v.Ends[0].IfName, v.Ends[1].IfName, v.State, edgeStyle[v.State])
	}
	for _, p := range pods {
		if !seen[p.Pod] {
			fmt.Fprintf(w, "  %q;\n", p.Pod)
		}
	}
	_, err := fmt.Fprintln(w, "}")
	return err
}
