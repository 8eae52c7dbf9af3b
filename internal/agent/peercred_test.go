package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
)

// TestSocketDirIsClosed: the socket's directory ends up 0700 even when it
// was made 0755 before the agent started (a hostPath DirectoryOrCreate),
// and one that is a symlink or another user's is refused.
func TestSocketDirIsClosed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a directory to another uid")
	}
	dir := filepath.Join(t.TempDir(), "run")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ratchetd.sock")
	ln, fi, err := listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	removeSocket(path, fi)
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("socket dir left %v, want 0700", st.Mode().Perm())
	}

	foreign := filepath.Join(t.TempDir(), "foreign")
	if err := os.Mkdir(foreign, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(foreign, 64123, 64123); err != nil {
		t.Fatal(err)
	}
	if ln, _, err := listen(filepath.Join(foreign, "ratchetd.sock")); err == nil {
		ln.Close()
		t.Error("a socket dir owned by another uid was used")
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(t.TempDir(), link); err != nil {
		t.Fatal(err)
	}
	if ln, _, err := listen(filepath.Join(link, "ratchetd.sock")); err == nil {
		ln.Close()
		t.Error("a symlinked socket dir was used")
	}
}

// TestServeRefusesOtherUIDs: with the socket's modes opened up, a caller
// whose uid is neither root nor the agent's is still refused (SO_PEERCRED)
// and never reaches a handler; root is answered.
func TestServeRefusesOtherUIDs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to connect as another uid")
	}
	base := t.TempDir()
	path := filepath.Join(base, "run", "ratchetd.sock")
	ln, fi, err := listen(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeSocket(path, fi) })
	ctx, cancel := context.WithCancel(context.Background())
	a := &Agent{cfg: Config{Node: "n1", CallTimeout: time.Second}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	served := make(chan struct{})
	go func() { defer close(served); a.serve(ctx, ln, nil) }()
	t.Cleanup(func() { cancel(); ln.Close(); <-served })
	// Only the peer check stands between another uid and the agent now.
	for _, d := range []string{filepath.Dir(base), base, filepath.Dir(path)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	req := &agentapi.Request{Op: agentapi.OpHealth, Node: "elsewhere"}

	// Root reaches the handler, which answers (here: the wrong node).
	_, err = agentapi.Call(context.Background(), path, req)
	var ce *agentapi.CallError
	if !errors.As(err, &ce) || !strings.Contains(ce.Msg, "node.name") {
		t.Fatalf("root's call: %v, want the handler's answer", err)
	}

	// uid 65534 connects from a thread of its own: credentials are per
	// thread in the kernel, and the thread is thrown away afterwards
	// (locked, never unlocked), so the rest of the test stays root.
	got := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), 65534, ^uintptr(0)); e != 0 {
			got <- e
			return
		}
		_, err := agentapi.Call(context.Background(), path, req)
		got <- err
	}()
	err = <-got
	if errors.Is(err, unix.EPERM) || err == nil {
		t.Fatalf("uid 65534's call: %v", err)
	}
	if errors.As(err, &ce) {
		t.Fatalf("uid 65534 reached the handler: %v", err)
	}
	// The agent closes the connection unread: the caller sees it closed
	// while it sends (EPIPE, ECONNRESET) or while it waits for the answer
	// (EOF), whichever comes first; the connect itself succeeded.
	closed := errors.Is(err, unix.EPIPE) || errors.Is(err, unix.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
	if !errors.Is(err, agentapi.ErrUnreachable) || !closed {
		t.Fatalf("uid 65534's call: %v, want the connection closed", err)
	}
}
