package ctl_test

import (
	"encoding/xml"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// svgGroup is a pod's or a link's group in `links --svg`.
type svgGroup struct {
	Class string `xml:"class,attr"`
	State string `xml:"data-state,attr"`
	Title string `xml:"title"`
	Path  struct {
		D      string `xml:"d,attr"`
		Stroke string `xml:"stroke,attr"`
	} `xml:"path"`
	Texts []string `xml:"text"`
}

type svgDoc struct {
	XMLName xml.Name
	Groups  []svgGroup `xml:"g>g"`
}

func (d *svgDoc) groups(class string) []svgGroup {
	var out []svgGroup
	for _, g := range d.Groups {
		if slices.Contains(strings.Fields(g.Class), class) {
			out = append(out, g)
		}
	}
	return out
}

// TestLinksSVGAndHTMLOfARealLab: two pods with two links between them,
// one pulled, and a link to a pod never added: the SVG has the three
// pods and three links in their states' colours, the up link's tooltip
// its counters read from the parking namespace, and the page the picture
// and a row per link.
func TestLinksSVGAndHTMLOfARealLab(t *testing.T) {
	dir := t.TempDir()
	t.Cleanup(func() { testutil.RemoveParking(dir) })
	r1, r2 := testutil.NewNS(t), testutil.NewNS(t)
	plugin(t, "ADD", dir, "r1", r1, `[{"name":"e1","peer":{"pod":"r2","name":"w1"}},{"name":"e2","peer":{"pod":"r2","name":"w2"}}]`)
	plugin(t, "ADD", dir, "r2", r2, `[{"name":"w1","peer":{"pod":"r1","name":"e1"}},{"name":"w2","peer":{"pod":"r1","name":"e2"}},`+
		`{"name":"e3","peer":{"pod":"r3","name":"w1"}}]`)
	t.Cleanup(func() {
		plugin(t, "DEL", dir, "r2", r2, "")
		plugin(t, "DEL", dir, "r1", r1, "")
	})
	mustCtl(t, nil, "link", "down", "--store", dir, "lab/r1:e2")

	out := mustCtl(t, nil, "links", "--store", dir, "--svg")
	var doc svgDoc
	if err := xml.Unmarshal([]byte(out), &doc); err != nil || doc.XMLName.Local != "svg" {
		t.Fatalf("links --svg does not parse as SVG (%v):\n%s", err, out)
	}
	var pods []string
	for _, p := range doc.groups("pod") {
		pods = append(pods, p.Texts[0]+map[bool]string{true: " (away)"}[strings.Contains(p.Class, "away")])
	}
	if want := []string{"lab/r1", "lab/r2", "lab/r3 (away)"}; !slices.Equal(pods, want) {
		t.Errorf("pods drawn: %v, want %v", pods, want)
	}
	links := doc.groups("link")
	if len(links) != 3 {
		t.Fatalf("%d links drawn, want 3:\n%s", len(links), out)
	}
	states := map[string]svgGroup{}
	paths := map[string]bool{}
	for _, l := range links {
		states[l.State] = l
		paths[l.Path.D] = true
	}
	colours := map[string]string{"up": "#2e7d32", "pulled": "#d81b60", "pending": "#9e9e9e"}
	for state, colour := range colours {
		l, ok := states[state]
		if !ok {
			t.Errorf("no %s link drawn", state)
			continue
		}
		if l.Path.Stroke != colour {
			t.Errorf("%s link drawn in %s, want %s", state, l.Path.Stroke, colour)
		}
	}
	if len(paths) != 3 {
		t.Errorf("the two links between r1 and r2 are drawn over each other")
	}
	up := states["up"]
	if !slices.Equal(up.Texts, []string{"e1", "w1"}) && !slices.Equal(up.Texts, []string{"w1", "e1"}) {
		t.Errorf("up link labelled %v", up.Texts)
	}
	for _, want := range []string{"state up", "→lab/r1:e1: ", "→lab/r2:w1: ", " packets", "carrier changes "} {
		if !strings.Contains(up.Title, want) {
			t.Errorf("the up link's tooltip lacks %q:\n%s", want, up.Title)
		}
	}
	if !strings.Contains(states["pulled"].Title, "settings pulled") {
		t.Errorf("the pulled link's tooltip:\n%s", states["pulled"].Title)
	}

	page := mustCtl(t, nil, "links", "--store", dir, "--html")
	root, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatalf("links --html does not parse: %v", err)
	}
	if strings.Contains(page, "://") {
		t.Errorf("the page names a URL")
	}
	var svgs, rows, linkGroups int
	for n := range root.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		class := ""
		for _, a := range n.Attr {
			if a.Key == "class" {
				class = a.Val
			}
		}
		switch {
		case n.Data == "svg":
			svgs++
		case n.Data == "tr" && class == "link":
			rows++
		case n.Data == "g" && strings.HasPrefix(class, "link "):
			linkGroups++
		case n.Data == "script" || n.Data == "link" || n.Data == "img":
			t.Errorf("the page has a <%s>", n.Data)
		}
	}
	if svgs != 1 || rows != 3 || linkGroups != 3 {
		t.Errorf("the page has %d pictures, %d link rows, %d links drawn; want 1, 3, 3", svgs, rows, linkGroups)
	}
}
