package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

const (
	lockFile   = "lock"
	dbFile     = "state.db"
	bootIDFile = "boot_id"
	bootIDPath = "/proc/sys/kernel/random/boot_id"
)

var (
	attachmentsBucket = []byte("attachments")
	podsBucket        = []byte("pods")
	linksBucket       = []byte("links")
	// indexBucket maps "<pod>\x00<ifname>" to a link id.
	indexBucket = []byte("link-index")
	metaBucket  = []byte("meta")
	// The Registry's buckets (local_registry.go).
	endsBucket     = []byte("reg-ends")
	nodesBucket    = []byte("reg-nodes")
	vniBucket      = []byte("reg-vni")
	linkVNIsBucket = []byte("reg-link-vni")
)

// allBuckets are created once, by the first open.
var allBuckets = [][]byte{attachmentsBucket, podsBucket, linksBucket, indexBucket, metaBucket,
	endsBucket, nodesBucket, vniBucket, linkVNIsBucket}

// Local is the embedded on-disk store for one node. It is opened under
// the node lock (NodeLock), so plugin processes that run in parallel take
// turns: OpenLocal takes the lock and Close releases it; NodeLock.Open
// opens the store under a lock its caller holds and releases.
type Local struct {
	// lock is the lock Close releases (nil: the caller's).
	lock *NodeLock
	db   *bolt.DB
}

// OpenLocal opens (creating it if needed) the store in dir: the directory
// is 0700 and its files 0600. It waits for the node lock for as long as it
// takes.
func OpenLocal(dir string) (*Local, error) {
	return OpenLocalWithin(context.Background(), dir, 0)
}

// OpenLocalWithin is OpenLocal waiting at most wait for the node lock (0:
// for as long as it takes) and while ctx lives: it returns an error
// wrapping ErrLockTimeout when another process holds it that long.
func OpenLocalWithin(ctx context.Context, dir string, wait time.Duration) (*Local, error) {
	lock, err := LockNode(ctx, dir, wait)
	if err != nil {
		return nil, err
	}
	st, err := lock.Open()
	if err != nil {
		lock.Unlock()
		return nil, err
	}
	st.lock = lock
	return st, nil
}

// Open opens the store under the lock, which the caller still holds and
// releases after the store's Close.
func (l *NodeLock) Open() (*Local, error) {
	dir := filepath.Dir(l.f.Name())
	if err := resetAfterReboot(dir); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if err := notSymlink(filepath.Join(dir, dbFile)); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	// NoSync: the state describes namespaces and netdevs, which all vanish
	// with a reboot, and resetAfterReboot discards the file then. Within one
	// boot the page cache survives any process crash, and bbolt's
	// copy-on-write pages keep a killed writer's half-done transaction
	// invisible. So fsync would buy nothing and cost two flushes per ADD.
	// The freelist is written with each commit (no NoFreelistSync): without
	// it, bbolt rebuilds the list by walking every page at the first write
	// of each process, and every ADD and DEL would cost in proportion to
	// the node's state (BenchmarkOpenWriteClose; figures in
	// docs/performance.md).
	db, err := bolt.Open(filepath.Join(dir, dbFile), 0o600, &bolt.Options{NoSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	// Buckets are made once; later opens only look.
	missing := false
	_ = db.View(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			missing = missing || tx.Bucket(b) == nil
		}
		return nil
	})
	if missing {
		err = createBuckets(db)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return &Local{db: db}, nil
}

func createBuckets(db *bolt.DB) error {
	return db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
}

// checkDir refuses a store directory that is a symlink or that another user
// owns (its owner could swap the files under us whatever their modes), and
// closes one that others can read or write to 0700: the state names the
// namespaces and links of every pod.
func checkDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("store dir %s is not a directory (a symlink is refused)", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("store dir %s is owned by uid %d: refused, it must be owned by root or uid %d", dir, st.Uid, os.Geteuid())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return os.Chmod(dir, 0o700)
	}
	return nil
}

// notSymlink refuses a file that is a symlink: the store never follows one
// out of its directory. bbolt cannot open with O_NOFOLLOW itself.
func notSymlink(path string) error {
	fi, err := os.Lstat(path)
	if err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("%s is a symlink: refused", path)
	}
	return nil
}

// resetAfterReboot sets aside a state file written during an earlier boot:
// every namespace and netdev it describes is gone, and, written without
// fsync, it may be torn by the power loss that ended that boot.
func resetAfterReboot(dir string) error {
	boot, err := os.ReadFile(bootIDPath)
	if err != nil {
		return err
	}
	marker := filepath.Join(dir, bootIDFile)
	seen, err := os.ReadFile(marker)
	if err == nil && string(seen) == string(boot) {
		return nil
	}
	if err == nil {
		db := filepath.Join(dir, dbFile)
		if err := os.Rename(db, db+".previous-boot"); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return writeFileNoFollow(marker, boot)
}

func writeFileNoFollow(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close implements Store.
func (l *Local) Close() error {
	err := l.db.Close()
	if l.lock != nil {
		err = errors.Join(err, l.lock.Unlock())
	}
	return err
}

func attachmentID(k AttachmentKey) []byte {
	return []byte(k.String())
}

// get decodes the JSON value at key into v; it reports whether it exists.
func (l *Local) get(bucket, key []byte, v any) (bool, error) {
	found := false
	err := l.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucket).Get(key)
		if raw == nil {
			return nil
		}
		found = true
		return json.Unmarshal(raw, v)
	})
	return found, err
}

func (l *Local) put(bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return l.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put(key, raw) })
}

func (l *Local) del(bucket, key []byte) error {
	return l.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Delete(key) })
}

// scan calls fn with every value whose key starts with prefix.
func scan[T any](l *Local, bucket []byte, prefix string) ([]*T, error) {
	var all []*T
	err := l.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		for k, v := c.Seek([]byte(prefix)); k != nil && strings.HasPrefix(string(k), prefix); k, v = c.Next() {
			item := new(T)
			if err := json.Unmarshal(v, item); err != nil {
				return fmt.Errorf("record %q: %w", k, err)
			}
			all = append(all, item)
		}
		return nil
	})
	return all, err
}

// Attachment implements Store.
func (l *Local) Attachment(_ context.Context, key AttachmentKey) (*Attachment, error) {
	a := &Attachment{}
	if found, err := l.get(attachmentsBucket, attachmentID(key), a); !found || err != nil {
		return nil, err
	}
	return a, nil
}

// PutAttachment implements Store.
func (l *Local) PutAttachment(_ context.Context, a *Attachment) error {
	return l.put(attachmentsBucket, attachmentID(a.AttachmentKey), a)
}

// DeleteAttachment implements Store.
func (l *Local) DeleteAttachment(_ context.Context, key AttachmentKey) error {
	return l.del(attachmentsBucket, attachmentID(key))
}

// Attachments implements Store.
func (l *Local) Attachments(_ context.Context, network string) ([]*Attachment, error) {
	if network == "" {
		return scan[Attachment](l, attachmentsBucket, "")
	}
	return scan[Attachment](l, attachmentsBucket, network+"/")
}

// Pod implements Topology.
func (l *Local) Pod(_ context.Context, pod string) (*PodRecord, error) {
	p := &PodRecord{}
	if found, err := l.get(podsBucket, []byte(pod), p); !found || err != nil {
		return nil, err
	}
	return p, nil
}

// PutPod implements Topology.
func (l *Local) PutPod(_ context.Context, p *PodRecord) error {
	return l.put(podsBucket, []byte(p.Pod), p)
}

// DeletePod implements Topology.
func (l *Local) DeletePod(_ context.Context, pod string) error {
	return l.del(podsBucket, []byte(pod))
}

// Pods implements Topology.
func (l *Local) Pods(_ context.Context) ([]*PodRecord, error) {
	return scan[PodRecord](l, podsBucket, "")
}

func indexKey(pod, ifName string) []byte { return []byte(pod + "\x00" + ifName) }

// Link implements Topology.
func (l *Local) Link(_ context.Context, id string) (*LinkRecord, error) {
	r := &LinkRecord{}
	if found, err := l.get(linksBucket, []byte(id), r); !found || err != nil {
		return nil, err
	}
	return r, nil
}

// PutLink implements Topology.
func (l *Local) PutLink(ctx context.Context, r *LinkRecord) error {
	return l.PutLinks(ctx, []*LinkRecord{r})
}

// ownsIndex reports whether a record may take the index entry of end e:
// only when the end's own pod declares or holds the link on that
// interface. Another pod's declaration naming e (a link pending on e's
// side) must not take the entry from the link e's pod really has there:
// that pod's DEL and CHECK find its links through the entry.
func ownsIndex(e *LinkEnd) bool {
	return e.Declared || e.Attachment != nil
}

// PutLinks implements Topology: a record takes the index entry of each end
// its pod declares or holds (ownsIndex); an entry it does not take stays as
// it is.
func (l *Local) PutLinks(_ context.Context, rs []*LinkRecord) error {
	return l.db.Update(func(tx *bolt.Tx) error {
		for _, r := range rs {
			raw, err := json.Marshal(r)
			if err != nil {
				return err
			}
			for _, e := range r.Ends {
				if !ownsIndex(&e) {
					continue
				}
				if err := tx.Bucket(indexBucket).Put(indexKey(e.Pod, e.IfName), []byte(r.ID)); err != nil {
					return err
				}
			}
			if err := tx.Bucket(linksBucket).Put([]byte(r.ID), raw); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteLink implements Topology.
func (l *Local) DeleteLink(_ context.Context, id string) error {
	return l.db.Update(func(tx *bolt.Tx) error {
		raw := tx.Bucket(linksBucket).Get([]byte(id))
		if raw == nil {
			return nil
		}
		r := &LinkRecord{}
		if err := json.Unmarshal(raw, r); err != nil {
			return err
		}
		for _, e := range r.Ends {
			key := indexKey(e.Pod, e.IfName)
			if string(tx.Bucket(indexBucket).Get(key)) == id {
				if err := tx.Bucket(indexBucket).Delete(key); err != nil {
					return err
				}
			}
		}
		if t := r.MirrorTo(); t != nil {
			if err := forgetMirror(tx.Bucket(metaBucket), *t, id); err != nil {
				return err
			}
		}
		return tx.Bucket(linksBucket).Delete([]byte(id))
	})
}

// forgetMirror drops id from the list of links mirrored to t, in the same
// transaction as the record's delete: a list that is kept by the writes
// that change a mirror, and never by a deleted link, would otherwise
// grow with every pod that goes while mirrored.
func forgetMirror(meta *bolt.Bucket, t MirrorTarget, id string) error {
	key := []byte(MirrorsToKey(t))
	raw := meta.Get(key)
	if raw == nil {
		return nil
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("meta %q: %w", key, err)
	}
	ids := slices.DeleteFunc(strings.Split(v, "\n"), func(s string) bool { return s == id || s == "" })
	if len(ids) == 0 {
		return meta.Delete(key)
	}
	raw, err := json.Marshal(strings.Join(ids, "\n"))
	if err != nil {
		return err
	}
	return meta.Put(key, raw)
}

// LinksOf implements Topology.
func (l *Local) LinksOf(_ context.Context, pod string) ([]*LinkRecord, error) {
	var all []*LinkRecord
	prefix := pod + "\x00"
	err := l.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(indexBucket).Cursor()
		for k, id := c.Seek([]byte(prefix)); k != nil && strings.HasPrefix(string(k), prefix); k, id = c.Next() {
			raw := tx.Bucket(linksBucket).Get(id)
			if raw == nil {
				continue // an index entry whose record is gone: ignore it
			}
			r := &LinkRecord{}
			if err := json.Unmarshal(raw, r); err != nil {
				return fmt.Errorf("link %q: %w", id, err)
			}
			all = append(all, r)
		}
		return nil
	})
	return all, err
}

// LinkAt returns the record indexed under pod's interface ifName (the
// link pod declares or holds there), or (nil, nil): one lookup, where
// LinksOf decodes every link of the pod.
func (l *Local) LinkAt(_ context.Context, pod, ifName string) (*LinkRecord, error) {
	var r *LinkRecord
	err := l.db.View(func(tx *bolt.Tx) error {
		id := tx.Bucket(indexBucket).Get(indexKey(pod, ifName))
		if id == nil {
			return nil
		}
		raw := tx.Bucket(linksBucket).Get(id)
		if raw == nil {
			return nil // an index entry whose record is gone
		}
		r = &LinkRecord{}
		if err := json.Unmarshal(raw, r); err != nil {
			return fmt.Errorf("link %q: %w", id, err)
		}
		return nil
	})
	return r, err
}

// Links implements Topology.
func (l *Local) Links(_ context.Context) ([]*LinkRecord, error) {
	return scan[LinkRecord](l, linksBucket, "")
}

// Meta implements Topology.
func (l *Local) Meta(_ context.Context, key string) (string, error) {
	var v string
	_, err := l.get(metaBucket, []byte(key), &v)
	return v, err
}

// PutMeta implements Topology.
func (l *Local) PutMeta(_ context.Context, key, value string) error {
	if value == "" {
		return l.del(metaBucket, []byte(key))
	}
	return l.put(metaBucket, []byte(key), value)
}
