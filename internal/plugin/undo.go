package plugin

// undoStack collects the inverse of every step an operation has taken, so
// that a failure can put everything back in reverse order, and owns what
// those inverses use, so that nothing they need is closed before they run.
type undoStack struct {
	steps []func()
	owned []func()
}

func (u *undoStack) push(f func()) { u.steps = append(u.steps, f) }

// own hands the stack a resource its steps may use (a namespace they act
// in): release runs in finish, after the steps.
func (u *undoStack) own(release func()) { u.owned = append(u.owned, release) }

// finish undoes every step, last first, unless the operation succeeded;
// then it releases what it owns, last first.
func (u *undoStack) finish(succeeded bool) {
	if !succeeded {
		for i := len(u.steps) - 1; i >= 0; i-- {
			u.steps[i]()
		}
	}
	for i := len(u.owned) - 1; i >= 0; i-- {
		u.owned[i]()
	}
	u.steps, u.owned = nil, nil
}
