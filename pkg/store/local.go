package store

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

const (
	lockFile   = "lock"
	dbFile     = "state.db"
	bootIDFile = "boot_id"
	bootIDPath = "/proc/sys/kernel/random/boot_id"
)

var attachmentsBucket = []byte("attachments")

// Local is the embedded on-disk store for one node. It holds an exclusive
// lock on its directory from Open to Close, so plugin processes that run in
// parallel take turns. bbolt's own file lock polls every 50 ms; a blocking
// flock on a side file first makes waiting cheap and fair.
type Local struct {
	lock *os.File
	db   *bolt.DB
}

// OpenLocal opens (creating it if needed) the store in dir: the directory
// is 0700 and its files 0600.
func OpenLocal(dir string) (*Local, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if err := flock(lock); err != nil {
		lock.Close()
		return nil, fmt.Errorf("%w: lock %s: %v", ErrUnavailable, lock.Name(), err)
	}
	if err := resetAfterReboot(dir); err != nil {
		lock.Close()
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	// NoSync: the state describes namespaces and netdevs, which all vanish
	// with a reboot, and resetAfterReboot discards the file then. Within one
	// boot the page cache survives any process crash, and bbolt's
	// copy-on-write pages keep a killed writer's half-done transaction
	// invisible. So fsync would buy nothing and cost two flushes per ADD.
	db, err := bolt.Open(filepath.Join(dir, dbFile), 0o600, &bolt.Options{NoSync: true, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return &Local{lock: lock, db: db}, nil
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

func flock(f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			return err
		}
	}
}

// Close implements Store.
func (l *Local) Close() error {
	err := l.db.Close()
	l.lock.Close() // closing the descriptor releases the flock
	return err
}

func attachmentID(k AttachmentKey) []byte {
	return []byte(k.String())
}

// Attachment implements Store.
func (l *Local) Attachment(_ context.Context, key AttachmentKey) (*Attachment, error) {
	var a *Attachment
	err := l.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(attachmentsBucket)
		if b == nil {
			return nil
		}
		v := b.Get(attachmentID(key))
		if v == nil {
			return nil
		}
		a = &Attachment{}
		return json.Unmarshal(v, a)
	})
	return a, err
}

// PutAttachment implements Store.
func (l *Local) PutAttachment(_ context.Context, a *Attachment) error {
	v, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return l.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(attachmentsBucket)
		if err != nil {
			return err
		}
		return b.Put(attachmentID(a.AttachmentKey), v)
	})
}

// DeleteAttachment implements Store.
func (l *Local) DeleteAttachment(_ context.Context, key AttachmentKey) error {
	return l.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(attachmentsBucket)
		if b == nil {
			return nil
		}
		return b.Delete(attachmentID(key))
	})
}

// Attachments implements Store.
func (l *Local) Attachments(_ context.Context, network string) ([]*Attachment, error) {
	var all []*Attachment
	prefix := []byte(network + "/")
	err := l.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(attachmentsBucket)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)); k, v = c.Next() {
			a := &Attachment{}
			if err := json.Unmarshal(v, a); err != nil {
				return fmt.Errorf("record %s: %w", k, err)
			}
			all = append(all, a)
		}
		return nil
	})
	return all, err
}
