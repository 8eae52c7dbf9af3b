package testutil

import (
	"context"
	"path/filepath"

	"github.com/ratchet-cni/ratchet/internal/parking"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// ParkingPath returns the path of the parking netns the local store in dir
// records, or "" when it records none.
func ParkingPath(dir string) string {
	st, err := store.OpenLocal(dir)
	if err != nil {
		return ""
	}
	defer st.Close()
	path, _ := st.Meta(context.Background(), parking.MetaKey)
	return path
}

// RemoveParking deletes the parking netns the local store in dir made; a
// test calls it when it ends, as ratchet never deletes one itself.
func RemoveParking(dir string) {
	if path := ParkingPath(dir); path != "" {
		_ = link.DeleteNamedNetns(filepath.Base(path))
	}
}
