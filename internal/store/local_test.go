package store_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/store"
)

var ctx = context.Background()

func key(net, id string) store.AttachmentKey {
	return store.AttachmentKey{Network: net, ContainerID: id, IfName: "eth0"}
}

func TestLocalRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s, err := store.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	a := &store.Attachment{AttachmentKey: key("lab", "c1"), Netns: "/var/run/netns/x", Marker: "ratchet:ab:", Group: 9, Links: []string{"in1"}}
	if err := s.PutAttachment(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAttachment(ctx, &store.Attachment{AttachmentKey: key("lab2", "c1")}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Attachment(ctx, key("lab", "c1"))
	if err != nil || got == nil || got.Netns != a.Netns || got.Group != 9 || got.Links[0] != "in1" {
		t.Fatalf("got %+v, %v", got, err)
	}
	if all, err := s.Attachments(ctx, "lab"); err != nil || len(all) != 1 {
		t.Fatalf("Attachments(lab) = %v, %v; want only lab's record", all, err)
	}
	if err := s.DeleteAttachment(ctx, key("lab", "c1")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAttachment(ctx, key("lab", "c1")); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if got, err := s.Attachment(ctx, key("lab", "c1")); got != nil || err != nil {
		t.Fatalf("after delete: %+v, %v", got, err)
	}
	s.Close()
	for name, want := range map[string]os.FileMode{"": 0o700, "state.db": 0o600, "lock": 0o600, "boot_id": 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, %v; want %v", name, fi.Mode().Perm(), err, want)
		}
	}
}

func TestLocalResetsAfterReboot(t *testing.T) {
	dir := t.TempDir()
	s, err := store.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutAttachment(ctx, &store.Attachment{AttachmentKey: key("lab", "c1")}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Same boot: the record stays.
	if s, err = store.OpenLocal(dir); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.Attachment(ctx, key("lab", "c1")); a == nil {
		t.Fatal("record lost across a reopen in the same boot")
	}
	s.Close()
	// A boot id from another boot: the state is set aside.
	if err := os.WriteFile(filepath.Join(dir, "boot_id"), []byte("another-boot\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err = store.OpenLocal(dir); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if a, _ := s.Attachment(ctx, key("lab", "c1")); a != nil {
		t.Fatal("state from an earlier boot survived")
	}
	if _, err := os.Stat(filepath.Join(dir, "state.db.previous-boot")); err != nil {
		t.Fatalf("earlier boot's state not kept aside: %v", err)
	}
}

// TestLocalSerialisesOpeners opens the store from many goroutines: each
// open holds the directory lock, so read-modify-write cycles never interleave.
func TestLocalSerialisesOpeners(t *testing.T) {
	dir := t.TempDir()
	const n = 20
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := store.OpenLocal(dir)
			if err != nil {
				t.Error(err)
				return
			}
			defer s.Close()
			a, _ := s.Attachment(ctx, key("count", "c"))
			if a == nil {
				a = &store.Attachment{AttachmentKey: key("count", "c")}
			}
			a.Group++
			if err := s.PutAttachment(ctx, a); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	s, err := store.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if a, _ := s.Attachment(ctx, key("count", "c")); a == nil || a.Group != n {
		t.Fatalf("counter = %+v, want %d increments", a, n)
	}
}

func TestLocalTopology(t *testing.T) {
	s, err := store.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := &store.LinkRecord{ID: "ns/a/in1~ns/b/in2", Ends: [2]store.LinkEnd{{Pod: "ns/a", IfName: "in1", Declared: true}, {Pod: "ns/b", IfName: "in2", Declared: true}}}
	if err := s.PutLink(ctx, r); err != nil {
		t.Fatal(err)
	}
	held := store.AttachmentKey{Network: "n", ContainerID: "c", IfName: "eth0"}
	other := &store.LinkRecord{ID: "ns/ab/x~ns/c/y", Ends: [2]store.LinkEnd{{Pod: "ns/ab", IfName: "x", Attachment: &held}, {Pod: "ns/c", IfName: "y", Declared: true}}}
	if err := s.PutLink(ctx, other); err != nil {
		t.Fatal(err)
	}
	for pod, want := range map[string]int{"ns/a": 1, "ns/b": 1, "ns/ab": 1, "ns/c": 1, "ns/x": 0} {
		if got, err := s.LinksOf(ctx, pod); err != nil || len(got) != want {
			t.Errorf("LinksOf(%s) = %d records, %v; want %d", pod, len(got), err, want)
		}
	}
	for _, c := range []struct{ pod, ifName, want string }{
		{"ns/a", "in1", r.ID}, {"ns/b", "in2", r.ID}, {"ns/c", "y", other.ID}, {"ns/a", "in2", ""}, {"ns/x", "in1", ""},
	} {
		got, err := s.LinkAt(ctx, c.pod, c.ifName)
		if err != nil || (got == nil) != (c.want == "") || got != nil && got.ID != c.want {
			t.Errorf("LinkAt(%s, %s) = %+v, %v; want %q", c.pod, c.ifName, got, err, c.want)
		}
	}
	got, _ := s.LinksOf(ctx, "ns/b")
	mine, peer, ok := got[0].End("ns/b", "in2")
	if !ok || mine.IfName != "in2" || peer.Pod != "ns/a" || !peer.Declared {
		t.Fatalf("End: %+v %+v %v", mine, peer, ok)
	}
	if err := s.DeleteLink(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.LinksOf(ctx, "ns/a"); len(got) != 0 {
		t.Fatalf("index entry survived DeleteLink: %v", got)
	}
	if got, err := s.LinkAt(ctx, "ns/a", "in1"); got != nil || err != nil {
		t.Fatalf("LinkAt after DeleteLink: %+v, %v", got, err)
	}
	if all, _ := s.Links(ctx); len(all) != 1 {
		t.Fatalf("Links = %d, want 1", len(all))
	}
	if err := s.PutPod(ctx, &store.PodRecord{Pod: "ns/a", Netns: "/x"}); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Pod(ctx, "ns/a"); p == nil || p.Netns != "/x" {
		t.Fatalf("Pod = %+v", p)
	}
	if err := s.PutMeta(ctx, "parking", "/var/run/netns/p"); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Meta(ctx, "parking"); v != "/var/run/netns/p" {
		t.Fatalf("Meta = %q", v)
	}
	if v, _ := s.Meta(ctx, "absent"); v != "" {
		t.Fatalf("Meta(absent) = %q", v)
	}
}

// TestLocalRefusesSymlinks: the store never follows a symlink out of its
// directory, and closes a directory others can read to 0700.
func TestLocalRefusesSymlinks(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.WriteFile(outside, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"state.db", "lock", "boot_id"} {
		dir := filepath.Join(t.TempDir(), "state")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
		if s, err := store.OpenLocal(dir); err == nil {
			s.Close()
			t.Errorf("%s as a symlink was accepted", name)
		}
		if got, _ := os.ReadFile(outside); string(got) != "precious" {
			t.Fatalf("%s: the file outside the store was changed", name)
		}
	}
	link := filepath.Join(t.TempDir(), "dirlink")
	if err := os.Symlink(t.TempDir(), link); err != nil {
		t.Fatal(err)
	}
	if s, err := store.OpenLocal(link); err == nil {
		s.Close()
		t.Error("a symlinked store dir was accepted")
	}
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := store.OpenLocal(open)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if fi, _ := os.Stat(open); fi.Mode().Perm() != 0o700 {
		t.Errorf("a world-readable store dir was left %v, want 0700", fi.Mode().Perm())
	}
}

// TestLocalRefusesForeignOwner: a store directory another user owns is
// refused, not tightened and used: its owner could swap the files in it.
func TestLocalRefusesForeignOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a directory to another uid")
	}
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	const stranger = 64123
	if err := os.Chown(dir, stranger, stranger); err != nil {
		t.Fatal(err)
	}
	if s, err := store.OpenLocal(dir); err == nil {
		s.Close()
		t.Fatal("a store dir owned by another uid was accepted")
	} else if !strings.Contains(err.Error(), "64123") {
		t.Errorf("the error does not name the owner: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("the refused dir got files: %v", entries)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o755 {
		t.Errorf("the refused dir's mode was changed to %v", fi.Mode().Perm())
	}
	// Root's own directory stays accepted.
	if err := os.Chown(dir, 0, 0); err != nil {
		t.Fatal(err)
	}
	s, err := store.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// TestIndexIsTheDeclaringPods: a link another pod declares towards a pod's
// interface does not take that pod's index entry: the pod's DEL and CHECK
// find its real link there. Once the pod declares the other link itself,
// the entry is that link's.
func TestIndexIsTheDeclaringPods(t *testing.T) {
	s, err := store.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ka := store.AttachmentKey{Network: "n", ContainerID: "a", IfName: "eth0"}
	kb := store.AttachmentKey{Network: "n", ContainerID: "b", IfName: "eth0"}
	kc := store.AttachmentKey{Network: "n", ContainerID: "c", IfName: "eth0"}
	ab := &store.LinkRecord{ID: "ab", Joined: true, Ends: [2]store.LinkEnd{
		{Pod: "ns/a", IfName: "e1", Declared: true, Attachment: &ka}, {Pod: "ns/b", IfName: "w1", Declared: true, Attachment: &kb}}}
	ca := &store.LinkRecord{ID: "ca", Ends: [2]store.LinkEnd{
		{Pod: "ns/a", IfName: "e1"}, {Pod: "ns/c", IfName: "x", Declared: true, Attachment: &kc}}}
	if err := s.PutLinks(ctx, []*store.LinkRecord{ab}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutLinks(ctx, []*store.LinkRecord{ca}); err != nil {
		t.Fatal(err)
	}
	ids := func(pod string) []string {
		t.Helper()
		recs, err := s.LinksOf(ctx, pod)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range recs {
			out = append(out, r.ID)
		}
		return out
	}
	if got := ids("ns/a"); len(got) != 1 || got[0] != "ab" {
		t.Fatalf("LinksOf(a) after c declared a link to a:e1 = %v, want [ab]", got)
	}
	if got := ids("ns/c"); len(got) != 1 || got[0] != "ca" {
		t.Fatalf("LinksOf(c) = %v, want [ca]", got)
	}
	// a is gone (its end forgotten), then comes back declaring c on e1.
	ab.Ends[0].Declared, ab.Ends[0].Attachment = false, nil
	ca.Ends[0].Declared, ca.Ends[0].Attachment = true, &ka
	if err := s.PutLinks(ctx, []*store.LinkRecord{ab, ca}); err != nil {
		t.Fatal(err)
	}
	if got := ids("ns/a"); len(got) != 1 || got[0] != "ca" {
		t.Fatalf("LinksOf(a) once a declares c on e1 = %v, want [ca]", got)
	}
	if got := ids("ns/b"); len(got) != 1 || got[0] != "ab" {
		t.Fatalf("LinksOf(b) = %v, want [ab]", got)
	}
}

// TestLinkRecordEnd: End finds an end by pod and interface, and reports
// none rather than handing out the other end.
func TestLinkRecordEnd(t *testing.T) {
	r := &store.LinkRecord{Ends: [2]store.LinkEnd{{Pod: "ns/a", IfName: "e1"}, {Pod: "ns/b", IfName: "w1"}}}
	if mine, other, ok := r.End("ns/b", "w1"); !ok || mine != &r.Ends[1] || other != &r.Ends[0] {
		t.Fatalf("End(b, w1) = %p %p %v", mine, other, ok)
	}
	for _, c := range [][2]string{{"ns/a", "w1"}, {"ns/c", "e1"}, {"ns/b", "e1"}} {
		if mine, other, ok := r.End(c[0], c[1]); ok || mine != nil || other != nil {
			t.Errorf("End(%s, %s) = %+v %+v %v, want none", c[0], c[1], mine, other, ok)
		}
	}
}

// TestLinkIDUnambiguous: no two different links share an id, whatever
// their names; ParseLinkID returns the ends LinkID was given; ids of
// names without separators are as they always were.
func TestLinkIDUnambiguous(t *testing.T) {
	x, _ := store.LinkID("ns/a", "x~ns/b|y", "ns/b", "z")
	y, _ := store.LinkID("ns/a", "x", "ns/b", "y~ns/b|z")
	if x == y {
		t.Fatalf("two links share the id %q", x)
	}
	if id, aFirst := store.LinkID("ns/b", "w1", "ns/a", "e1"); id != "ns/a|e1~ns/b|w1" || aFirst {
		t.Fatalf("LinkID of plain names = %q, %v", id, aFirst)
	}
	for _, ends := range [][4]string{
		{"ns/a", "x~ns/b|y", "ns/b", "z"}, {"ns/a", "x", "ns/b", "y~ns/b|z"},
		{"ns/a", "%7C", "ns/b", "|"}, {"ns/a", "%", "ns/b", "%25"}, {"ns/a", "e1", "ns/b", "w1"},
	} {
		id, aFirst := store.LinkID(ends[0], ends[1], ends[2], ends[3])
		pa, ia, pb, ib, ok := store.ParseLinkID(id)
		if !aFirst {
			pa, ia, pb, ib = pb, ib, pa, ia
		}
		if !ok || [4]string{pa, ia, pb, ib} != ends {
			t.Errorf("ParseLinkID(%q) = %q %q %q %q %v, want %q", id, pa, ia, pb, ib, ok, ends)
		}
	}
	for _, bad := range []string{"ns/a|e~1~ns/b|w1", "ns/a|e%1~ns/b|w1", "ns/a|e|1~ns/b|w1", "ns/a|e1", "|e1~ns/b|w1"} {
		if _, _, _, _, ok := store.ParseLinkID(bad); ok {
			t.Errorf("ParseLinkID(%q) read an id LinkID cannot make", bad)
		}
	}
}

// FuzzLinkID: whatever the names, ParseLinkID gives back the ends LinkID
// was given, so no two different links can share an id.
func FuzzLinkID(f *testing.F) {
	f.Add("ns/a", "x~ns/b|y", "ns/b", "z")
	f.Add("ns/a", "x", "ns/b", "y~ns/b|z")
	f.Add("ns/a", "%7C", "ns/b", "%")
	f.Fuzz(func(t *testing.T, podA, ifA, podB, ifB string) {
		if podA == "" || podB == "" {
			return
		}
		id, aFirst := store.LinkID(podA, ifA, podB, ifB)
		pa, ia, pb, ib, ok := store.ParseLinkID(id)
		if !aFirst {
			pa, ia, pb, ib = pb, ib, pa, ia
		}
		if !ok || pa != podA || ia != ifA || pb != podB || ib != ifB {
			t.Fatalf("LinkID(%q, %q, %q, %q) = %q, read back as %q %q %q %q %v", podA, ifA, podB, ifB, id, pa, ia, pb, ib, ok)
		}
	})
}
