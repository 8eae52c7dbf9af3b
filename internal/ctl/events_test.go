package ctl_test

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// streamedEvent is a line of `ratchetctl events -o json`.
type streamedEvent struct {
	Time    time.Time `json:"time"`
	Event   string    `json:"event"`
	Link    string    `json:"link"`
	Ends    [2]string `json:"ends"`
	State   string    `json:"state"`
	Details string    `json:"details"`
}

// TestEventsStream: `ratchetctl events -o json`, started before the pods,
// tells a link's life in order as the real plugin and `ratchetctl link`
// act on it, and stops cleanly on SIGTERM.
func TestEventsStream(t *testing.T) {
	dir := t.TempDir()
	t.Cleanup(func() { testutil.RemoveParking(dir) })
	cmd := exec.Command(filepath.Join(binDir, "ratchetctl"), "events", "-o", "json", "--store", dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := false
	t.Cleanup(func() {
		if !exited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	lines := make(chan streamedEvent, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e streamedEvent
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Errorf("not a JSON object: %q: %v", sc.Text(), err)
				continue
			}
			lines <- e
		}
	}()
	// expect reads events until one of kind want for the link comes, and
	// returns it; other kinds in between are fine (a link made with both
	// pods at once may skip pending).
	expect := func(want string) streamedEvent {
		t.Helper()
		timeout := time.After(5 * time.Second)
		for {
			select {
			case e, ok := <-lines:
				if !ok {
					t.Fatalf("stream ended waiting for %q; stderr: %s", want, stderr.String())
				}
				t.Logf("event %+v", e)
				if e.Event == want {
					return e
				}
				if want != "stitched" && e.Event == "removed" {
					t.Fatalf("link removed while waiting for %q", want)
				}
			case <-timeout:
				t.Fatalf("no %q event within 5 s", want)
			}
		}
	}
	time.Sleep(100 * time.Millisecond) // the first read of the empty store
	r1, r2 := testutil.NewNS(t), testutil.NewNS(t)
	mustCNI(t, "ADD", dir, "r1", r1, r1Links)
	made := expect("made")
	if made.Ends != [2]string{"lab/r1:e1", "lab/r2:w1"} || made.Link == "" {
		t.Errorf("made: %+v", made)
	}
	mustCNI(t, "ADD", dir, "r2", r2, r2Links)
	if e := expect("stitched"); e.State != "up" || e.Link != made.Link {
		t.Errorf("stitched: %+v", e)
	}
	mustCtl(t, nil, "link", "down", "--store", dir, "lab/r1:e1")
	if e := expect("pulled"); e.State != "pulled" || !strings.Contains(e.Details, "kernel:") || !strings.Contains(e.Details, "down") {
		t.Errorf("pulled: %+v; want the parked ends' notifications in the details", e)
	}
	mustCtl(t, nil, "link", "up", "--store", dir, "lab/r2:w1")
	if e := expect("restored"); e.State != "up" {
		t.Errorf("restored: %+v", e)
	}
	mustCtl(t, nil, "link", "set", "--store", dir, "--rate", "10mbit", "lab/r1:e1")
	if e := expect("impaired"); e.State != "impaired" || !strings.Contains(e.Details, "rate 10Mbit") && !strings.Contains(e.Details, "rate 10mbit") {
		t.Errorf("impaired: %+v", e)
	}
	mustCNI(t, "DEL", dir, "r1", r1, r1Links)
	if e := expect("parked"); e.State != "parked" {
		t.Errorf("parked: %+v", e)
	}
	mustCNI(t, "DEL", dir, "r2", r2, r2Links)
	if e := expect("removed"); e.Link != made.Link {
		t.Errorf("removed: %+v", e)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		exited = true
		if err != nil {
			t.Errorf("events after SIGTERM: %v; stderr: %s", err, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("events did not stop within 5 s of SIGTERM")
	}
}
