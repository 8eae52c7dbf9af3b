package labop

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/linkparam"
	"github.com/ratchet-cni/ratchet/internal/store"
)

func TestParseEnd(t *testing.T) {
	for in, want := range map[string]End{
		"lab/r1:e1":    {Pod: "lab/r1", IfName: "e1"},
		"ns/a:b:eth-1": {Pod: "ns/a:b", IfName: "eth-1"}, // the last colon splits
	} {
		got, err := ParseEnd(in)
		if err != nil || got != want {
			t.Errorf("ParseEnd(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if got.String() != in {
			t.Errorf("ParseEnd(%q).String() = %q", in, got.String())
		}
	}
	for _, in := range []string{"", "r1:e1", "lab/r1", "lab/r1:", "/r1:e1", "lab/:e1"} {
		_, err := ParseEnd(in)
		var ae *ArgumentError
		if !errors.As(err, &ae) || !IsBadArgument(err) {
			t.Errorf("ParseEnd(%q): %v, want an ArgumentError", in, err)
		}
		if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("%q", in)) {
			t.Errorf("ParseEnd(%q): %q does not name the end", in, err)
		}
	}
}

func TestIsBadArgument(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{badArg("x"), true},
		{fmt.Errorf("--to: %w", badArg("x")), true},
		{fmt.Errorf("%w lab/r1:e9", ErrNoSuchEnd), true},
		{ErrNotAttached, false},
		{errors.New("netlink: operation not permitted"), false},
		{nil, false},
	} {
		if got := IsBadArgument(c.err); got != c.want {
			t.Errorf("IsBadArgument(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// TestImpairChangeApply: a change sets the named fields only, in the
// directions given relative to the named end, keeps the others, and is
// checked as a whole with what was set before.
func TestImpairChangeApply(t *testing.T) {
	rec := &store.LinkRecord{Settings: &store.Settings{Toward: [2]*linkparam.Impairment{
		{Delay: 10 * time.Millisecond, Loss: 1},
		{Rate: 1000},
	}}}
	c := ImpairChange{To: true, Values: map[string]string{"loss": "5%", "reorder": "25"}}
	// The named end is end 1: "to" is toward end 1's pod.
	toward, err := c.apply(rec, 1)
	if err == nil || !strings.HasPrefix(err.Error(), "reorder") {
		t.Fatalf("reorder without a delay toward end 1: %v, %v; want linkparam's reorder error", toward, err)
	}
	toward, err = c.apply(rec, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := (linkparam.Impairment{Delay: 10 * time.Millisecond, Loss: 5, Reorder: 25}); *toward[0] != want {
		t.Errorf("toward end 0: %+v, want %+v", *toward[0], want)
	}
	if want := (linkparam.Impairment{Rate: 1000}); *toward[1] != want {
		t.Errorf("toward end 1 (not changed): %+v, want %+v", *toward[1], want)
	}
	both := ImpairChange{To: true, From: true, Values: map[string]string{"rate": "0"}}
	if toward, err = both.apply(rec, 0); err != nil {
		t.Fatal(err)
	}
	if toward[1].Rate != 0 || toward[0].Delay != 10*time.Millisecond {
		t.Errorf("rate 0 both ways: %+v %+v, want the rate gone and the delay kept", *toward[0], *toward[1])
	}
	if rec.Toward(1).Rate != 1000 {
		t.Error("apply changed the record it read")
	}
	bad := ImpairChange{From: true, Values: map[string]string{"loss": "101%"}}
	if _, err := bad.apply(rec, 0); err == nil || !strings.HasPrefix(err.Error(), "loss") {
		t.Errorf("loss 101%%: %v, want linkparam's loss error", err)
	}
}

// TestOpenHonoursContext: a session waits for the node lock only while
// the caller's context lives (ratchetd's shutdown must not wait LockWait),
// and a store it cannot open is a StoreError, for the caller to name its
// own flag.
func TestOpenHonoursContext(t *testing.T) {
	dir := t.TempDir()
	held, err := store.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	s, err := Open(ctx, dir, "")
	if err == nil {
		s.Close()
		t.Fatal("Open took the lock another holder has")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Open returned after %v, its context ended after 200ms", took)
	}
	if _, ok := errors.AsType[*StoreError](err); !ok {
		t.Errorf("Open: %v (%T), want a StoreError", err, err)
	}
}
