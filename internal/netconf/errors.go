package netconf

import (
	"fmt"

	"github.com/containernetworking/cni/pkg/types"
)

// Ratchet-specific CNI error codes (the CNI spec reserves 100 and up for
// plugins).
const (
	// ErrLinkExists: an interface the config names already exists.
	ErrLinkExists uint = 100
	// ErrLinkFailed: the kernel refused to create or configure a link.
	ErrLinkFailed uint = 101
	// ErrStore: the state store failed.
	ErrStore uint = 102
	// ErrCheckFailed: CHECK found a link that differs from its spec.
	ErrCheckFailed uint = 103
	// ErrNodeFull: the ADD would make more parked ends than the node's
	// maxParkedEnds.
	ErrNodeFull uint = 104
)

// Invalid returns a code-7 error naming the field and its value.
func Invalid(field string, value any, why string) *types.Error {
	return types.NewError(types.ErrInvalidNetworkConfig,
		fmt.Sprintf("invalid %s %s: %s", field, quote(value), why), "")
}

func quote(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprint(v)
}
