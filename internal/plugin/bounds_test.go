package plugin_test

import (
	"strings"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// TestMaxParkedEnds: a pending link costs a veth pair without the peer's
// consent, so the node bounds its parked ends. An ADD that would take the
// parking namespace past maxParkedEnds fails with code 104 before it makes
// anything; once room is freed, the same ADD works.
func TestMaxParkedEnds(t *testing.T) {
	e := newPodEnv(t)
	e.extra = map[string]any{"maxParkedEnds": 2}
	e.add("r1", linksJSON(t, podLink("e1", "192.0.2.1/30", "r2", "w1"), podLink("e2", "192.0.2.5/30", "r3", "w1")))
	if got := testutil.Links(t, e.parking()); len(got) != 2 { // testutil.Links leaves lo out
		t.Fatalf("parking holds %v, want r1's two parked ends", got)
	}
	links, pods, atts := e.records()

	ann := linksJSON(t, podLink("w1", "192.0.2.2/30", "r1", "e1"))
	e.starts["r2"]++
	e.pods["r2"] = testutil.NewNS(t)
	_, cniErr := run(t, e.call("ADD", "r2", ann))
	if cniErr == nil || cniErr.Code != netconf.ErrNodeFull || !strings.Contains(cniErr.Msg, "maxParkedEnds (2)") {
		t.Fatalf("ADD past maxParkedEnds: %v, want code 104 naming maxParkedEnds", cniErr)
	}
	if got := e.links("r2"); len(got) != 0 {
		t.Fatalf("the refused ADD left %v in r2", got)
	}
	if got := testutil.Links(t, e.parking()); len(got) != 2 {
		t.Fatalf("the refused ADD changed the parking namespace: %v", got)
	}
	if l, p, a := e.records(); l != links || p != pods || a != atts {
		t.Fatalf("the refused ADD changed the records: %d/%d/%d links/pods/attachments, were %d/%d/%d", l, p, a, links, pods, atts)
	}

	e.del("r1")
	mustRun(t, e.call("ADD", "r2", ann))
	if got := e.links("r2"); len(got) != 1 || got[0] != "w1" {
		t.Fatalf("r2 holds %v after r1 made room", got)
	}
	e.del("r2")
	e.expectEmpty()
}
