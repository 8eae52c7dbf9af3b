package link

import "context"

type stepHookKey struct{}

// WithStepHook returns a context under which Create calls hook after each of
// its steps; an error from hook fails that step, and Create undoes what it
// did. Tests use it to prove that a failure at any point leaves nothing.
func WithStepHook(ctx context.Context, hook func(step string) error) context.Context {
	return context.WithValue(ctx, stepHookKey{}, hook)
}

func step(ctx context.Context, name string) error {
	if hook, ok := ctx.Value(stepHookKey{}).(func(string) error); ok && hook != nil {
		return hook(name)
	}
	return nil
}
