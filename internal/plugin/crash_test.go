package plugin_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/testutils"

	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// startFault starts the fault-injection build of the plugin for c, with
// extra environment; the caller waits.
func startFault(t *testing.T, c call, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "ratchet-fault"))
	cmd.Env = append([]string{"CNI_COMMAND=" + c.cmd, "CNI_CONTAINERID=" + c.containerID, "CNI_NETNS=" + c.netns,
		"CNI_IFNAME=eth0", "CNI_ARGS=" + c.args, "CNI_PATH=" + binDir, "PATH=" + os.Getenv("PATH")}, env...)
	cmd.Stdin = strings.NewReader(c.conf)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func killedBySIGKILL(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// TestCrashSafety kills the ADD of a pod with 64 links (to a peer that is
// there, so killed ADDs have stitched and plugged in the peer's ends) at
// many points, by its own steps and at random times, and proves that the
// following DEL and GC leave no netdev, parked end or record of it, that
// the peer is unplugged again, and that a fresh ADD then succeeds.
func TestCrashSafety(t *testing.T) {
	const links = 64
	e := newPodEnv(t)
	rng := testutil.Rand(t) // the timed kills' delays
	var la, lb []map[string]any
	for i := 0; i < links; i++ {
		la = append(la, podLink(fmt.Sprintf("a%d", i), fmt.Sprintf("2001:db8:%x::1/64", i), "pb", fmt.Sprintf("b%d", i)))
		lb = append(lb, podLink(fmt.Sprintf("b%d", i), fmt.Sprintf("2001:db8:%x::2/64", i), "pa", fmt.Sprintf("a%d", i)))
	}
	annA, annB := linksJSON(t, la...), linksJSON(t, lb...)
	e.add("pb", annB)

	// One traced run counts ADD's steps.
	trace := filepath.Join(t.TempDir(), "trace")
	e.pods["pa"] = testutil.NewNS(t)
	if err := startFault(t, e.call("ADD", "pa", annA), "RATCHET_FAULT_TRACE="+trace).Wait(); err != nil {
		t.Fatal(err)
	}
	mustRun(t, e.call("DEL", "pa", nil))
	raw, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	steps := strings.Count(string(raw), "\n")
	if steps < 100 {
		t.Fatalf("only %d steps traced", steps)
	}
	var points []int
	for k := 1; k <= steps; k += steps / 55 {
		points = append(points, k)
	}
	points = append(points, steps) // the very last step: all made, nothing returned
	const timed = 12

	survived := 0
	check := func(how string) {
		t.Helper()
		mustRun(t, e.call("DEL", "pa", nil))
		gc := e.call("GC", "pb", nil)
		gc.conf = confJSON(t, "1.1.0", e.dir, map[string]any{"cni.dev/valid-attachments": []any{map[string]any{"containerID": e.call("ADD", "pb", nil).containerID, "ifname": "eth0"}}})
		mustRun(t, gc)
		if got := e.links("pa"); len(got) != 0 {
			t.Fatalf("%s: pa still holds %v after DEL and GC", how, got)
		}
		park := testutil.Handle(t, e.parking())
		all, err := park.LinkList()
		if err != nil {
			t.Fatal(err)
		}
		parked := 0
		for _, l := range all {
			if l.Attrs().Name == "lo" {
				continue
			}
			parked++
			if l.Attrs().Flags&1 != 0 { // net.FlagUp
				t.Fatalf("%s: pb's parked end %s is still plugged in", how, l.Attrs().Name)
			}
		}
		if parked != links {
			t.Fatalf("%s: parking holds %d ends, want pb's %d", how, parked, links)
		}
		if l, p, a := e.records(); l != links || p != 1 || a != 1 {
			t.Fatalf("%s: records %d links, %d pods, %d attachments; want pb's %d, 1, 1", how, l, p, a, links)
		}
		// A fresh ADD succeeds and the link carries traffic.
		mustRun(t, e.call("ADD", "pa", annA))
		testutil.MustPing(t, e.pods["pa"], "2001:db8:7::2")
		mustRun(t, e.call("DEL", "pa", nil))
		survived++
	}
	fresh := func() {
		n := e.pods["pa"]
		n.Close()
		_ = testutils.UnmountNS(n)
		e.starts["pa"]++
		e.pods["pa"] = testutil.NewNS(t)
	}
	for _, k := range points {
		fresh()
		err := startFault(t, e.call("ADD", "pa", annA), fmt.Sprintf("RATCHET_FAULT_KILL_AT=%d", k)).Wait()
		if !killedBySIGKILL(err) {
			t.Fatalf("kill at step %d: the plugin was not killed (%v)", k, err)
		}
		check(fmt.Sprintf("killed after step %d of %d", k, steps))
	}
	for i := 0; i < timed; i++ {
		fresh()
		cmd := startFault(t, e.call("ADD", "pa", annA))
		delay := time.Duration(rng.IntN(60)) * time.Millisecond
		time.Sleep(delay)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		check(fmt.Sprintf("timed kill %d, %v after the start", i, delay))
	}
	t.Logf("survived %d kills (%d at steps out of %d, %d at random times)", survived, len(points), steps, timed)
	if survived < 50 {
		t.Fatalf("only %d kill points", survived)
	}
	e.del("pb")
	e.del("pa")
	e.expectEmpty()
}
