package ctl

import "github.com/ratchet-cni/ratchet/internal/printable"

// The command's names and messages are printed through printable, which
// the live-lab operations (internal/labop) share for their errors.
var (
	shown          = printable.Name
	escapeControls = printable.Message
)
