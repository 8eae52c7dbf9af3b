package store

import (
	"context"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// metaKeys lists every key of the meta bucket: an entry written as ""
// reads as "" whether or not it is there, so only the bucket tells.
func metaKeys(t *testing.T, l *Local) []string {
	t.Helper()
	var keys []string
	if err := l.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(metaBucket).ForEach(func(k, _ []byte) error {
			keys = append(keys, string(k))
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestMirrorListFollowsDeletes: deleting a mirrored link's record drops it
// from its collector's list (and only from its collector's), the last one
// deletes the list's key, and PutMeta of "" deletes a key rather than
// keeping an empty entry.
func TestMirrorListFollowsDeletes(t *testing.T) {
	ctx := context.Background()
	l, err := OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c := MirrorTarget{Pod: "lab/c", IfName: "eth1"}
	d := MirrorTarget{Pod: "lab/d", IfName: "eth1"}
	mirrored := func(id string, to *MirrorTarget) *LinkRecord {
		r := &LinkRecord{ID: id, Ends: [2]LinkEnd{{Pod: "lab/" + id + "a", IfName: "eth1", Declared: true}, {Pod: "lab/" + id + "b", IfName: "eth1", Declared: true}}}
		if to != nil {
			r.Settings = &Settings{Mirror: to}
		}
		return r
	}
	for _, r := range []*LinkRecord{mirrored("l1", &c), mirrored("l2", &c), mirrored("l3", &d), mirrored("l4", nil)} {
		if err := l.PutLink(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(l.PutMeta(ctx, MirrorsToKey(c), "l1\nl2"))
	must(l.PutMeta(ctx, MirrorsToKey(d), "l3\nl1"))
	must(l.DeleteLink(ctx, "l1"))
	if v, _ := l.Meta(ctx, MirrorsToKey(c)); v != "l2" {
		t.Fatalf("c's list after deleting l1: %q, want l2", v)
	}
	// l1 mirrored to c, not d: d's list is not the delete's to change.
	if v, _ := l.Meta(ctx, MirrorsToKey(d)); v != "l3\nl1" {
		t.Fatalf("d's list after deleting l1: %q", v)
	}
	must(l.DeleteLink(ctx, "l4"))
	must(l.DeleteLink(ctx, "l2"))
	must(l.DeleteLink(ctx, "l2")) // again: no record, nothing to do
	if keys := metaKeys(t, l); slices.Contains(keys, MirrorsToKey(c)) {
		t.Fatalf("c's emptied list is still a key: %q", keys)
	}
	must(l.PutMeta(ctx, MirrorsToKey(d), ""))
	if keys := metaKeys(t, l); len(keys) != 0 {
		t.Fatalf("meta keys left: %q, want none", keys)
	}
	must(l.PutMeta(ctx, "absent", "")) // deleting a missing key is no error
}
