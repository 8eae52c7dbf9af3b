package web

import (
	"context"

	"github.com/ratchet-cni/ratchet/internal/labop"
)

// CtlControl pulls and plugs cables through the live-lab operations
// ratchetctl runs (labop.Cable), so the page validates and records a
// change exactly as `ratchetctl link down|up` does.
type CtlControl struct {
	// Dir is the local store's directory; Socket ratchetd's, through
	// which a cross-node link's settings go.
	Dir, Socket string
}

// Cable implements Controller.
func (c CtlControl) Cable(_ context.Context, end string, pull bool) error {
	err := labop.Cable(c.Dir, c.Socket, end, pull)
	if err != nil && labop.IsBadArgument(err) {
		return badRequest{err}
	}
	return err
}

// badRequest marks err as the caller's (errors.Is ErrBadRequest) and says
// what err says.
type badRequest struct{ error }

func (b badRequest) Is(target error) bool { return target == ErrBadRequest }

func (b badRequest) Unwrap() error { return b.error }
