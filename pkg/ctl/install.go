package ctl

import (
	"io"
)

func install(args []string, stdout io.Writer) error {
	return badArg("install: not wired yet")
}
