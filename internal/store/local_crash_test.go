package store_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// A plugin process can be killed at any instant, in the middle of a
// commit too. Processes that write the store without pause are SIGKILLed
// at random moments; after each kill the file must pass bbolt's own
// consistency check (every page reachable once, the freelist right), and
// the store must open and take a write.
func TestLocalSurvivesSIGKILLMidWrite(t *testing.T) {
	const writerEnv = "RATCHET_STORE_CRASH_WRITER"
	if dir := os.Getenv(writerEnv); dir != "" {
		writeForever(t, dir)
		return
	}
	dir := filepath.Join(t.TempDir(), "state")
	rng := testutil.Rand(t)
	kills := 60
	if testing.Short() {
		kills = 15
	}
	for i := 0; i < kills; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLocalSurvivesSIGKILLMidWrite$")
		cmd.Env = append(os.Environ(), writerEnv+"="+dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The writer needs a few ms to start; kill it anywhere from
		// before its first open to deep in its loop.
		time.Sleep(time.Duration(2+rng.IntN(40)) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		checkFile(t, filepath.Join(dir, "state.db"), i)
	}
	s, err := store.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if held, err := s.Attachments(ctx, "crash"); err != nil || len(held) == 0 {
		t.Fatalf("the writers committed nothing before their kills (%d records, %v): the test proves nothing", len(held), err)
	}
	k := key("crash", "after")
	if err := s.PutAttachment(ctx, &store.Attachment{AttachmentKey: k, Links: []string{"eth1"}}); err != nil {
		t.Fatal(err)
	}
	if a, err := s.Attachment(ctx, k); err != nil || a == nil {
		t.Fatalf("after %d kills, a new record reads back as %v, %v", kills, a, err)
	}
}

// writeForever is the writer process: open, record and withdraw
// attachments, close, again, until it is killed.
func writeForever(t *testing.T, dir string) {
	for n := 0; ; n++ {
		s, err := store.OpenLocal(dir)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 20; i++ {
			k := key("crash", fmt.Sprintf("c%d-%d", n, i))
			links := make([]string, 1+i%8)
			for j := range links {
				links[j] = fmt.Sprintf("eth%d", j+1)
			}
			if err := s.PutAttachment(ctx, &store.Attachment{AttachmentKey: k, Netns: "/var/run/netns/x", Links: links}); err != nil {
				t.Fatal(err)
			}
			if i%3 == 0 {
				if err := s.DeleteAttachment(ctx, k); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func checkFile(t *testing.T, path string, kill int) {
	t.Helper()
	if _, err := os.Stat(path); os.IsNotExist(err) {
		return // killed before its first open
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("after kill %d: open: %v", kill, err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("after kill %d: the file is inconsistent: %v", kill, err)
	}
}
