// Package fault lets tests fail an operation after any of its steps, to
// prove that every failure is undone. Without a hook in the context, Step
// does nothing.
package fault

import "context"

type hookKey struct{}

// With returns a context under which Step calls hook with each step's name;
// an error from hook fails that step.
func With(ctx context.Context, hook func(step string) error) context.Context {
	return context.WithValue(ctx, hookKey{}, hook)
}

// global is the hook of a whole process, for test builds of a binary (see
// cmd/ratchet/faultinject.go, built only with the faultinject tag).
var global func(step string) error

// SetGlobal installs a hook for every Step whose context carries none.
func SetGlobal(hook func(step string) error) { global = hook }

// Step reports that the named step has completed; it returns the hook's
// verdict.
func Step(ctx context.Context, name string) error {
	if hook, ok := ctx.Value(hookKey{}).(func(string) error); ok && hook != nil {
		return hook(name)
	}
	if global != nil {
		return global(name)
	}
	return nil
}
