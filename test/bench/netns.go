package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ratchet-cni/ratchet/internal/parking"
)

// netnsDir is where named namespaces are bind-mounted, as by `ip netns add`.
const netnsDir = "/var/run/netns"

// namePrefix starts the name of every namespace this tool creates; the
// process id follows, so that a later run can tell a dead run's leftovers
// from a live run's namespaces.
const namePrefix = "ratchet-bench-"

// netnsSet creates named network namespaces and deletes every one of them
// at the end, whatever happened in between.
type netnsSet struct {
	mu      sync.Mutex
	seq     atomic.Int64
	live    map[string]*nsRef
	parking map[string]bool // ratchet's parking namespaces, by name
}

// nsRef is one named namespace: its path and an open descriptor.
type nsRef struct {
	Name string
	Path string
	h    netns.NsHandle
}

// Fd returns the namespace's file descriptor.
func (n *nsRef) Fd() int { return int(n.h) }

func newNetnsSet() *netnsSet {
	return &netnsSet{live: map[string]*nsRef{}, parking: map[string]bool{}}
}

// create makes a fresh named namespace (tag ends up in its name, for
// whoever looks at `ip netns list` meanwhile).
func (s *netnsSet) create(tag string) (*nsRef, error) {
	name := fmt.Sprintf("%s%d-%d-%s", namePrefix, os.Getpid(), s.seq.Add(1), tag)
	if len(name) > 64 {
		name = name[:64]
	}
	h, err := newNamed(name)
	if err != nil {
		return nil, fmt.Errorf("create netns %s: %w", name, err)
	}
	n := &nsRef{Name: name, Path: filepath.Join(netnsDir, name), h: h}
	s.mu.Lock()
	s.live[name] = n
	s.mu.Unlock()
	return n, nil
}

// remove deletes one namespace now. The kernel tears a namespace down
// once nothing holds it any more: its mount, and our descriptor.
func (s *netnsSet) remove(n *nsRef) error {
	if n == nil {
		return nil
	}
	s.mu.Lock()
	delete(s.live, n.Name)
	s.mu.Unlock()
	n.h.Close()
	return deleteNamed(n.Name)
}

// removeAll deletes every namespace still alive, and ratchet's parking
// namespaces of our store directories.
func (s *netnsSet) removeAll() error {
	s.mu.Lock()
	live := make([]*nsRef, 0, len(s.live))
	for _, n := range s.live {
		live = append(live, n)
	}
	parking := make([]string, 0, len(s.parking))
	for name := range s.parking {
		parking = append(parking, name)
	}
	s.mu.Unlock()
	var errs []error
	for _, n := range live {
		errs = append(errs, s.remove(n))
	}
	for _, name := range parking {
		errs = append(errs, deleteNamed(name))
	}
	return errors.Join(errs...)
}

// watchParking records the parking namespace ratchet makes for a store
// directory (parking.Name), to delete it at the end.
func (s *netnsSet) watchParking(storeDir string) string {
	name := parking.Name(storeDir)
	s.mu.Lock()
	s.parking[name] = true
	s.mu.Unlock()
	return name
}

// newNamed is `ip netns add name`: a new namespace bind-mounted under
// /var/run/netns. The calling thread's own namespace is left as it was.
func newNamed(name string) (netns.NsHandle, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return netns.None(), err
	}
	defer orig.Close()
	h, err := netns.NewNamed(name) // moves this thread into it
	if serr := netns.Set(orig); serr != nil {
		// This thread is stuck in the new namespace: keep it locked, so
		// that Go discards it instead of running other goroutines on it.
		runtime.LockOSThread()
		if err == nil {
			h.Close()
			_ = deleteNamed(name)
		}
		return netns.None(), fmt.Errorf("return to the original netns: %w", serr)
	}
	return h, err
}

// deleteNamed is `ip netns del name`; a name that is gone is not an error.
func deleteNamed(name string) error {
	path := filepath.Join(netnsDir, name)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// sweepStale deletes what an earlier run of this tool left behind when it
// was killed (SIGKILL leaves no chance to clean up): its namespaces, the
// parking namespaces of its store directories, and those directories.
// Only names with this tool's prefix and a dead process id are touched.
func sweepStale(tmpRoot string) []string {
	var swept []string
	dead := func(pidStr string) bool {
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid <= 0 || pid == os.Getpid() {
			return false
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			return true
		}
		// A zombie (killed, not reaped yet) holds nothing either.
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return false
		}
		_, rest, ok := strings.Cut(string(stat), ") ")
		return ok && strings.HasPrefix(rest, "Z")
	}
	entries, _ := os.ReadDir(netnsDir)
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), namePrefix)
		if !ok {
			continue
		}
		pid, _, _ := strings.Cut(rest, "-")
		if dead(pid) && deleteNamed(e.Name()) == nil {
			swept = append(swept, e.Name())
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(tmpRoot, namePrefix+"*"))
	for _, dir := range dirs {
		pid := strings.TrimPrefix(filepath.Base(dir), namePrefix)
		if !dead(pid) {
			continue
		}
		stores, _ := filepath.Glob(filepath.Join(dir, "store-*"))
		for _, st := range stores {
			name := parking.Name(st)
			if _, err := os.Stat(filepath.Join(netnsDir, name)); err == nil && deleteNamed(name) == nil {
				swept = append(swept, name)
			}
		}
		if os.RemoveAll(dir) == nil {
			swept = append(swept, dir)
		}
	}
	return swept
}

// sysctlIn writes a net.* sysctl of namespace n (they belong to the
// writing thread's namespace).
func sysctlIn(n *nsRef, key, value string) error {
	return inNode(n, func() error {
		return os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644)
	})
}
