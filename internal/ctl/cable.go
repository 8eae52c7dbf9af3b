package ctl

import (
	"errors"

	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// ErrNoSuchEnd is the error of a link command naming an end no pod link
// has.
var ErrNoSuchEnd = errors.New("no pod link has the end")

// cableDecider is `link down` (pull) and `link up`'s decision.
func cableDecider(pull bool) decider {
	return func(rec *store.LinkRecord, _ int, obs podlink.Observation) (podlink.Decision, error) {
		if pull {
			return podlink.OnPull(rec, obs), nil
		}
		return podlink.OnRestore(rec, obs), nil
	}
}

// Cable pulls (pull) or plugs back the cable of the pod link with the end
// named NAMESPACE/POD:IFNAME, as `ratchetctl link down|up --store dir
// --socket socket end` does, through the same code: for other programs
// (ratchetd's topology page) that offer the command.
// IsBadArgument tells the caller's mistakes from the node's failures.
func Cable(dir, socket, end string, pull bool) error {
	target, err := parseEndRef(end)
	if err != nil {
		return err
	}
	s, err := openSession(dir)
	if err != nil {
		return err
	}
	defer s.close()
	s.socket = socket
	return s.adjust(target, cableDecider(pull))
}

// IsBadArgument reports whether err is a link command's refusal of its
// arguments: a malformed value or an end no link has.
func IsBadArgument(err error) bool {
	var ue *usageError
	return errors.As(err, &ue) || errors.Is(err, ErrNoSuchEnd)
}
