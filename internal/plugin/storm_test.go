package plugin_test

import (
	"fmt"
	"math/rand/v2"
	"os/exec"
	"slices"
	"sync"
	"testing"

	"github.com/containernetworking/plugins/pkg/testutils"
	"golang.org/x/sys/unix"

	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// TestStorm: 100 pods with a random topology of 150 links; each round ADDs
// every pod 8 at a time in random order, DELs a random half, then the rest.
// After each wave: every link whose two pods are up passes traffic, a link
// with one pod up has no carrier there, no pod or parking namespace holds
// an orphan netdev, and the store holds exactly what is up.
func TestStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("the storm takes half a minute")
	}
	const pods, links, inFlight, rounds = 100, 150, 8, 3
	rng := rand.New(rand.NewPCG(7, 11))
	e := newPodEnv(t)
	name := func(i int) string { return fmt.Sprintf("s%03d", i) }
	type edge struct{ a, b int }
	var edges []edge
	seen := map[edge]bool{}
	for len(edges) < links {
		a, b := rng.IntN(pods), rng.IntN(pods)
		if a == b || seen[edge{a, b}] || seen[edge{b, a}] {
			continue
		}
		seen[edge{a, b}] = true
		edges = append(edges, edge{a, b})
	}
	ends := make([][]map[string]any, pods) // each pod's declared links
	ifaces := make([][]string, pods)
	for i, ed := range edges {
		ifn := fmt.Sprintf("l%d", i)
		ends[ed.a] = append(ends[ed.a], podLink(ifn, fmt.Sprintf("2001:db8:%x::1/64", i), name(ed.b), ifn))
		ends[ed.b] = append(ends[ed.b], podLink(ifn, fmt.Sprintf("2001:db8:%x::2/64", i), name(ed.a), ifn))
		ifaces[ed.a] = append(ifaces[ed.a], ifn)
		ifaces[ed.b] = append(ifaces[ed.b], ifn)
	}
	ann := make([]map[string]string, pods)
	for i := range ann {
		ann[i] = map[string]string{}
		if len(ends[i]) > 0 {
			ann[i] = linksJSON(t, ends[i]...)
		}
		slices.Sort(ifaces[i])
	}

	up := make([]bool, pods)
	wave := func(op string, which []int) {
		t.Helper()
		var mu sync.Mutex
		var failures []string
		sem := make(chan struct{}, inFlight)
		var wg sync.WaitGroup
		for _, i := range which {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				if _, cniErr := run(t, e.call(op, name(i), ann[i])); cniErr != nil {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%s %s: %v", op, name(i), cniErr))
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		for _, f := range failures {
			t.Error(f)
		}
		for _, i := range which {
			up[i] = op == "ADD"
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	verify := func(when string) {
		t.Helper()
		// Pods hold exactly their links; links with both pods up pass
		// traffic, with one pod up have no carrier there.
		var mu sync.Mutex
		var problems []string
		report := func(format string, a ...any) {
			mu.Lock()
			problems = append(problems, when+": "+fmt.Sprintf(format, a...))
			mu.Unlock()
		}
		sem := make(chan struct{}, inFlight)
		var wg sync.WaitGroup
		for k, ed := range edges {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				switch {
				case up[ed.a] && up[ed.b]:
					if err := exec.Command("nsenter", "--net="+e.pods[name(ed.a)].Path(), "ping", "-c", "1", "-W", "2", fmt.Sprintf("2001:db8:%x::2", k)).Run(); err != nil {
						report("link %d %s-%s passes no traffic", k, name(ed.a), name(ed.b))
					}
				case up[ed.a] || up[ed.b]:
					// checked below, in the test goroutine
				}
			}()
		}
		wg.Wait()
		parked, present := 0, 0
		for k, ed := range edges {
			for _, side := range []int{ed.a, ed.b} {
				if !up[side] {
					continue
				}
				parked++
				other := ed.b
				if side == ed.b {
					other = ed.a
				}
				l := mustLink(t, e.pods[name(side)], fmt.Sprintf("l%d", k))
				if has := l.Attrs().RawFlags&unix.IFF_LOWER_UP != 0; has != up[other] {
					report("%s:l%d carrier %v with its peer up=%v", name(side), k, has, up[other])
				}
			}
			if up[ed.a] || up[ed.b] {
				present++
			}
		}
		// A pod with no pod links is not registered, and its ADD, which
		// passes through without the store, records no attachment either.
		attached, registered := 0, 0 // pods up with pod links
		for i := 0; i < pods; i++ {
			if !up[i] {
				continue
			}
			if len(ifaces[i]) > 0 {
				attached++
				registered++
			}
			if got := e.links(name(i)); !slices.Equal(got, ifaces[i]) {
				report("%s holds %v, want %v", name(i), got, ifaces[i])
			}
		}
		if attached > 0 || present > 0 {
			if got := len(testutil.Links(t, e.parking())); got != parked {
				report("parking holds %d ends, want %d", got, parked)
			}
		}
		l, p, a := e.records()
		if l != present || p != registered || a != attached {
			report("store holds %d links, %d pods, %d attachments; want %d, %d, %d", l, p, a, present, registered, attached)
		}
		for _, pr := range problems {
			t.Error(pr)
		}
		if t.Failed() {
			t.FailNow()
		}
	}

	for round := 1; round <= rounds; round++ {
		all := rng.Perm(pods)
		for _, i := range all {
			e.starts[name(i)]++
			e.pods[name(i)] = testutil.NewNS(t)
		}
		wave("ADD", all)
		verify(fmt.Sprintf("round %d, all up", round))
		half := rng.Perm(pods)[:pods/2]
		wave("DEL", half)
		verify(fmt.Sprintf("round %d, half down", round))
		var rest []int
		for i := 0; i < pods; i++ {
			if up[i] {
				rest = append(rest, i)
			}
		}
		wave("DEL", rest)
		verify(fmt.Sprintf("round %d, all down", round))
		for i := 0; i < pods; i++ {
			n := e.pods[name(i)]
			n.Close()
			_ = testutils.UnmountNS(n)
			delete(e.pods, name(i))
		}
	}
	e.expectEmpty()
}
