package store

import (
	"fmt"

	"github.com/ratchet-cni/ratchet/internal/linkparam"
)

// MaxVNI is the largest VXLAN network identifier (24 bits).
const MaxVNI = linkparam.MaxVNI

// CheckVNIRange refuses a VNI range that AllocateVNI cannot use: 0 means
// "no VNI", and a VNI has 24 bits.
func CheckVNIRange(first, last uint32) error {
	if first == 0 || first > last || last > MaxVNI {
		return fmt.Errorf("invalid VNI range [%d, %d]: want 1 <= first <= last <= %d", first, last, MaxVNI)
	}
	return nil
}
