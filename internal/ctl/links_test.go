package ctl_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// plugin runs the ratchet binary for pod as containerd's CRI does.
func plugin(t *testing.T, cmd, dir, pod string, n ns.NetNS, annotation string) {
	t.Helper()
	if _, err := testutil.PodCNI(binDir, cmd, dir, pod, n.Path(), annotation); err != nil {
		t.Fatal(err)
	}
}

func TestLinksShowsStates(t *testing.T) {
	dir := t.TempDir()
	t.Cleanup(func() { testutil.RemoveParking(dir) })
	r1, r2 := testutil.NewNS(t), testutil.NewNS(t)
	plugin(t, "ADD", dir, "r1", r1, `[{"name":"e1","peer":{"pod":"r2","name":"w1"}}]`)
	plugin(t, "ADD", dir, "r2", r2, `[{"name":"w1","peer":{"pod":"r1","name":"e1"}},{"name":"e2","peer":{"pod":"r3","name":"w1"}}]`)
	out := mustCtl(t, nil, "links", "--store", dir)
	for _, want := range []string{"lab/r1", "lab/r2", "up lab/r1:e1 lab/r2:w1", "pending lab/r2:e2 lab/r3:w1"} {
		if !hasRow(out, want) {
			t.Errorf("links output lacks %q:\n%s", want, out)
		}
	}
	dot := mustCtl(t, nil, "links", "--store", dir, "--dot")
	if !strings.HasPrefix(dot, "graph ratchet {") || !strings.Contains(dot, `"lab/r1" -- "lab/r2"`) || !strings.Contains(dot, `label="up"`) {
		t.Errorf("dot output:\n%s", dot)
	}
	plugin(t, "DEL", dir, "r2", r2, "")
	if out := mustCtl(t, nil, "links", "--store", dir); !hasRow(out, "parked lab/r1:e1 lab/r2:w1") {
		t.Errorf("after r2's DEL:\n%s", out)
	}
	// Pull r1's parked end out from under the store: broken.
	st, err := store.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := st.LinksOf(context.Background(), "lab/r1")
	st.Close()
	path := testutil.ParkingPath(dir)
	parked := recs[0].Ends[0].Parked
	if recs[0].Ends[1].Pod == "lab/r1" {
		parked = recs[0].Ends[1].Parked
	}
	if out, err := exec.Command("ip", "-n", filepath.Base(path), "link", "del", parked).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if out := mustCtl(t, nil, "links", "--store", dir); !hasRow(out, "broken lab/r1:e1 lab/r2:w1") {
		t.Errorf("after the parked end vanished:\n%s", out)
	}
}

// hasRow reports whether a table row, with its columns joined by single
// spaces, starts with want.
// hasExactRow reports whether a line of out is want, with any run of
// blanks as one: a link with no settings has no settings cell.
func hasExactRow(out, want string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.Join(strings.Fields(line), " ") == want {
			return true
		}
	}
	return false
}

func hasRow(out, want string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.Join(strings.Fields(line), " "), want) {
			return true
		}
	}
	return false
}

// TestLinksQuotesControlCharacters: names written to the store (from
// annotations, CNI arguments or the kernel) reach the operator's terminal
// quoted when they hold control characters, in the table and the graph.
func TestLinksQuotesControlCharacters(t *testing.T) {
	dir := t.TempDir()
	t.Cleanup(func() { testutil.RemoveParking(dir) })
	st, err := store.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	evil := "lab/r\x1b[2J1"
	key := store.AttachmentKey{Network: "lab", ContainerID: "sb\r1", IfName: "eth0"}
	if err := st.PutPod(ctx, &store.PodRecord{Pod: evil, Attachment: key, Netns: "/run/netns/x\nlab/forged"}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutLink(ctx, &store.LinkRecord{ID: "l1", Ends: [2]store.LinkEnd{
		{Pod: evil, IfName: "e\a1", Declared: true}, {Pod: "lab/r2", IfName: "w1"},
	}}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	for _, args := range [][]string{{"links", "--store", dir}, {"links", "--store", dir, "--dot"}} {
		out := mustCtl(t, nil, args...)
		if i := strings.IndexFunc(out, func(r rune) bool { return r < 0x20 && r != '\n' || r == 0x7f }); i >= 0 {
			t.Errorf("%v printed a raw control character at %d:\n%q", args, i, out)
		}
		for _, want := range []string{`"lab/r\x1b[2J1"`, `"/run/netns/x\nlab/forged"`, `\r`, `"e\a1"`} {
			if args[len(args)-1] == "--dot" && (strings.HasPrefix(want, `"/run`) || want == `\r`) {
				continue // the graph shows no netns or attachment
			}
			if !strings.Contains(out, want) {
				t.Errorf("%v lacks %s:\n%s", args, want, out)
			}
		}
		if strings.Contains(out, "\nlab/forged") {
			t.Errorf("%v: a name forged a line:\n%s", args, out)
		}
	}
}

// TestLinksReleasesTheLockBeforePrinting: `ratchetctl links` whose stdout
// is a full pipe nobody reads (a pager not yet drawn, `| less` at the
// first screen) must not keep the node lock: an ADD on the node completes
// meanwhile.
func TestLinksReleasesTheLockBeforePrinting(t *testing.T) {
	dir := t.TempDir()
	t.Cleanup(func() { testutil.RemoveParking(dir) })
	r1, r2 := testutil.NewNS(t), testutil.NewNS(t)
	plugin(t, "ADD", dir, "r1", r1, `[{"name":"e1","peer":{"pod":"r2","name":"w1"}}]`)

	// A pipe of one page, filled: ratchetctl's first write blocks.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, os.Getpagesize()); err != nil {
		t.Fatal(err)
	}
	filler := bytes.Repeat([]byte{'#'}, os.Getpagesize())
	if _, err := w.Write(filler); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, "ratchetctl"), "links", "--store", dir)
	cmd.Stdout = w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	exited := false
	defer func() {
		if !exited {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	// Wait until it is blocked writing: it has read everything it prints.
	blocked := func() bool {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/wchan", cmd.Process.Pid))
		for _, task := range tasks {
			if b, _ := os.ReadFile(task); strings.HasSuffix(string(b), "pipe_write") { // anon_pipe_write on newer kernels
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(10 * time.Second)
	for !blocked() {
		if time.Now().After(deadline) {
			var seen []string
			tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/wchan", cmd.Process.Pid))
			for _, task := range tasks {
				b, _ := os.ReadFile(task)
				seen = append(seen, string(b))
			}
			t.Fatalf("ratchetctl links never blocked on its stdout: %v", seen)
		}
		time.Sleep(10 * time.Millisecond)
	}

	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"lab","type":"ratchet","store":{"dir":%q,"lockTimeout":"2s"},
	  "runtimeConfig":{"io.kubernetes.cri.pod-annotations":{"ratchet.cni.dev/links":%q}}}`, dir, `[{"name":"w1","peer":{"pod":"r1","name":"e1"}}]`)
	add := exec.Command(filepath.Join(binDir, "ratchet"))
	add.Env = []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=sb-r2", "CNI_NETNS=" + r2.Path(), "CNI_IFNAME=eth0",
		"CNI_PATH=" + binDir, "CNI_ARGS=K8S_POD_NAMESPACE=lab;K8S_POD_NAME=r2"}
	add.Stdin = strings.NewReader(conf)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ADD while ratchetctl links waits on its stdout: %v\n%s", err, out)
	}

	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	exited = true
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ratchetctl links: %v", err)
	}
	if got := string(bytes.TrimPrefix(out, filler)); !hasRow(got, "pending lab/r1:e1 lab/r2:w1") {
		t.Fatalf("ratchetctl links printed, as of its read:\n%s", got)
	}
	plugin(t, "DEL", dir, "r2", r2, "")
	plugin(t, "DEL", dir, "r1", r1, "")
}
