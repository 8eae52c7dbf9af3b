package link

import (
	"errors"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// interrupted returns a dump that the kernel interrupts n times, returning
// a partial list each time, before it returns the full list.
func interrupted(n int, calls *int) func() ([]int, error) {
	return func() ([]int, error) {
		*calls++
		if *calls <= n {
			return []int{1}, netlink.ErrDumpInterrupted
		}
		return []int{1, 2, 3}, nil
	}
}

func TestRetryDumpReturnsTheFullList(t *testing.T) {
	calls := 0
	got, err := retryDump(interrupted(dumpAttempts-1, &calls))
	if err != nil || !slices.Equal(got, []int{1, 2, 3}) || calls != dumpAttempts {
		t.Fatalf("got %v, %v after %d calls; want the full list after %d", got, err, calls, dumpAttempts)
	}
}

func TestRetryDumpGivesUpWithoutAPartialList(t *testing.T) {
	calls := 0
	got, err := retryDump(interrupted(dumpAttempts, &calls))
	if !errors.Is(err, netlink.ErrDumpInterrupted) || got != nil || calls != dumpAttempts {
		t.Fatalf("got %v, %v after %d calls; want no list and ErrDumpInterrupted after %d", got, err, calls, dumpAttempts)
	}
}

func TestRetryDumpReturnsOtherErrorsAtOnce(t *testing.T) {
	calls := 0
	_, err := retryDump(func() ([]int, error) { calls++; return nil, unix.EPERM })
	if !errors.Is(err, unix.EPERM) || calls != 1 {
		t.Fatalf("got %v after %d calls; want EPERM after 1", err, calls)
	}
}

func TestNilKernelStepPasses(t *testing.T) {
	var k *Kernel
	if err := k.Step("anything"); err != nil {
		t.Fatal(err)
	}
	if err := NewKernel().Step("anything"); err != nil {
		t.Fatal(err)
	}
}
