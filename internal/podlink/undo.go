package podlink

import (
	"log/slog"
)

// Undo collects the inverse of every step an operation has taken, so that
// a failure can put everything back in reverse order. Each step owns what
// it uses; what several steps share (a netlink handle, a namespace) is
// handed to Own, and released only once the steps have run or been
// discarded, never before: an undo step never meets a closed handle.
type Undo struct {
	log   *slog.Logger
	steps []undoStep
	owned []func()
}

type undoStep struct {
	what string
	fn   func() error
}

// NewUndo returns an empty stack that logs the failures of its steps to
// log (nil: slog's default logger).
func NewUndo(log *slog.Logger) *Undo {
	if log == nil {
		log = slog.Default()
	}
	return &Undo{log: log}
}

// Push adds the inverse of a step just taken; what names it in the log
// should it fail.
func (u *Undo) Push(what string, fn func() error) {
	u.steps = append(u.steps, undoStep{what, fn})
}

// Logger returns the logger the stack reports to, for its user's notes on
// the same operation.
func (u *Undo) Logger() *slog.Logger { return u.log }

// Own hands the stack a resource its steps use; release runs once, after
// the steps (Finish).
func (u *Undo) Own(release func()) { u.owned = append(u.owned, release) }

// Finish ends the operation: when it failed (!ok), every step is undone,
// last first, each failure logged and the rest still run; then what the
// stack owns is released, last first. Call it from a defer set up before
// the first step.
func (u *Undo) Finish(ok bool) {
	if !ok {
		for i := len(u.steps) - 1; i >= 0; i-- {
			s := u.steps[i]
			if err := s.fn(); err != nil {
				u.log.Error("undo failed", "step", s.what, "error", err)
			}
		}
	}
	u.steps = nil
	for i := len(u.owned) - 1; i >= 0; i-- {
		u.owned[i]()
	}
	u.owned = nil
}
