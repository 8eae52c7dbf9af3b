package plugin

// undoStack collects the inverse of every step an operation has taken, so
// that a failure can put everything back in reverse order.
type undoStack []func()

func (u *undoStack) push(f func()) { *u = append(*u, f) }

// run undoes every step, last first.
func (u *undoStack) run() {
	for i := len(*u) - 1; i >= 0; i-- {
		(*u)[i]()
	}
	*u = nil
}
