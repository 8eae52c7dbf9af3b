package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
)

// OwnNetnsEnv is set in a test binary that RunInOwnNetns re-ran in a
// network namespace of its own.
const OwnNetnsEnv = "RATCHET_TEST_OWN_NETNS"

// RunInOwnNetns runs a package's tests in a network namespace of their
// own, where 127.0.0.1 is private to them: servers they start (etcd) and
// clients they point at closed ports reach nothing of the host's. Call it
// from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testutil.RunInOwnNetns(m)) }
//
// The first run re-executes the test binary, with the same arguments, in a
// new network namespace and returns its exit code; the re-run brings lo up
// and runs the tests. Child processes the tests start inherit the
// namespace, and it vanishes with the last of them. It needs root
// (CAP_SYS_ADMIN).
func RunInOwnNetns(m *testing.M) int {
	if os.Getenv(OwnNetnsEnv) != "" {
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "bring lo up in the test's own netns: %v\n", err)
			return 1
		}
		return m.Run()
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "these tests run in a network namespace of their own and must run as root")
		return 1
	}
	// Pdeathsig fires when the thread that started the child exits: keep
	// this one for the whole run.
	runtime.LockOSThread()
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), OwnNetnsEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit) && exit.ExitCode() >= 0:
		return exit.ExitCode()
	default:
		fmt.Fprintf(os.Stderr, "re-run the tests in their own netns: %v\n", err)
		return 1
	}
}
